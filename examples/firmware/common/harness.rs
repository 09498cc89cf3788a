//! Target-independent part of the firmware (`#[path]`-included by m4, m0 and rv32): runs
//! `predict` on the compiled-in samples and prints, through the target's `put` function:
//!
//! ```text
//! microgen-fw target=<triple> model=<file> samples=<N> in=<bytes> out=<bytes> arena=<ARENA_BYTES> macs=<MACS> system=<microgen|microflow|baseline> repeat=<R> state=<STATE_BYTES>
//! OUT <i> <hex bytes of output sample i>          (N lines)
//! stack_peak=<bytes> stack_predict=<bytes> stack_region=<bytes> stack_model=<bytes>
//! DONE
//! ```
//!
//! `bench_start` / `bench_end` bracket the (single) `predict` call site, so QEMU's insncount
//! plugin reports one region per inference (R per sample with MICROGEN_REPEAT=R; the output
//! printed is the last call's). `stack_peak`: the whole run (printing included);
//! `stack_predict`: the first inference (with the frames of main and `run` above it);
//! `stack_model`: the first inference below the caller's stack pointer (what `predict` itself
//! needs; the benchmark's stack figure).
use crate::gen::{self, model};
use core::sync::atomic::{compiler_fence, Ordering};

static mut MARK: u32 = 0;
/// Start marker for the instruction-counting plugin.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_start() {
    unsafe { core::ptr::write_volatile(&raw mut MARK, 1) }
}
/// End marker for the instruction-counting plugin.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_end() {
    unsafe { core::ptr::write_volatile(&raw mut MARK, 2) }
}

static mut ARENA: model::Arena = model::Arena::new();
static mut INPUT: model::Input = gen::new_input();
static mut OUTPUT: model::Output = gen::new_output();
static mut STATE: gen::State = gen::new_state();
static mut OUT_BUF: [u8; gen::OUT_BYTES] = [0; gen::OUT_BYTES];

const PAINT: u32 = 0xC0FF_EE5A;

/// Fills [bottom, SP on entry - 32) with the paint word. Safe without interrupts: nothing live
/// is below the stack pointer, and the 32 bytes cover this function's own pushes (the compiler
/// may read SP before its prologue). So a figure below 32 bytes reads as 32.
#[inline(never)]
pub fn paint_stack(bottom: usize) {
    let end = (sp_now() - 32) & !3;
    let mut p = (bottom + 3) & !3;
    while p < end {
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The stack pointer.
#[inline(always)]
fn sp_now() -> usize {
    let sp: usize;
    #[cfg(target_arch = "arm")]
    unsafe {
        core::arch::asm!("mov {0}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(target_arch = "riscv32")]
    unsafe {
        core::arch::asm!("mv {0}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    {
        let here = 0u32;
        sp = core::hint::black_box(&here) as *const u32 as usize;
    }
    sp
}

/// Bytes of stack used so far: from `top` down to the lowest word that is no longer paint.
pub fn stack_peak(bottom: usize, top: usize) -> usize {
    let mut p = (bottom + 3) & !3;
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

pub fn put_dec(put: fn(&[u8]), mut v: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&buf[i..]);
}

pub fn put_hex(put: fn(&[u8]), bytes: &[u8]) {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 128];
    for chunk in bytes.chunks(64) {
        for (i, &b) in chunk.iter().enumerate() {
            buf[2 * i] = H[(b >> 4) as usize];
            buf[2 * i + 1] = H[(b & 15) as usize];
        }
        put(&buf[..2 * chunk.len()]);
    }
}

/// Copies a sample's bytes to the model's input, or its output to the bytes printed (all three
/// targets are little-endian, so the raw bytes are the tensors' little-endian bytes). One
/// out-of-line copy whose length the optimizer cannot see: the model-free baseline carries the
/// same code (a `memcpy` call), so `.text` beyond the baseline is the model's code alone, not a
/// copy loop or `memcpy` that only a larger input would pull in.
#[inline(never)]
pub fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    let (dst, src) = core::hint::black_box((dst, src));
    dst.copy_from_slice(src);
}

/// One inference, never inlined: whatever `predict` needs (its frame and its callees') lies
/// below `run`'s stack pointer, where `stack_model` measures it. The call costs a few
/// instructions, which the benchmark's model-free baseline subtracts with the markers'.
#[inline(never)]
fn infer(arena: &mut model::Arena, state: &mut gen::State, input: &model::Input, output: &mut model::Output) {
    gen::predict(arena, state, input, output)
}

/// `PANIC at <file>:<line>` (no formatting machinery: the location's parts only).
pub fn put_panic(put: fn(&[u8]), info: &core::panic::PanicInfo) {
    put(b"PANIC");
    if let Some(l) = info.location() {
        put(b" at ");
        put(l.file().as_bytes());
        put(b":");
        put_dec(put, l.line() as usize);
    }
    put(b"\n");
}

/// Runs every sample and prints the report. `stack = (bottom, top)` of the painted region.
pub fn run(put: fn(&[u8]), target: &str, stack: (usize, usize)) {
    put(b"microgen-fw target=");
    put(target.as_bytes());
    put(b" model=");
    put(gen::MODEL_NAME.as_bytes());
    put(b" samples=");
    put_dec(put, gen::SAMPLES);
    put(b" in=");
    put_dec(put, gen::IN_BYTES);
    put(b" out=");
    put_dec(put, gen::OUT_BYTES);
    put(b" arena=");
    put_dec(put, model::ARENA_BYTES);
    put(b" macs=");
    put_dec(put, model::MACS as usize);
    put(b" system=");
    put(gen::SYSTEM.as_bytes());
    put(b" repeat=");
    put_dec(put, gen::REPEAT);
    put(b" state=");
    put_dec(put, gen::STATE_BYTES);
    put(b"\n");
    let (arena, state, input, output, o) = unsafe {
        (&mut *(&raw mut ARENA), &mut *(&raw mut STATE), &mut *(&raw mut INPUT), &mut *(&raw mut OUTPUT), &mut *(&raw mut OUT_BUF))
    };
    // Re-paint below this frame: the peak during the first inference excludes the printing.
    paint_stack(stack.0);
    let sp_call = sp_now();
    let mut predict_peak = 0;
    for i in 0..gen::SAMPLES {
        // Sizes through black_box: the same code whatever the model (see `copy_bytes`).
        let (inputs, n) = core::hint::black_box((gen::INPUTS, gen::IN_BYTES));
        gen::load_input(&inputs[i * n..(i + 1) * n], input);
        for _ in 0..gen::REPEAT {
            bench_start();
            compiler_fence(Ordering::SeqCst);
            infer(
                core::hint::black_box(&mut *arena),
                core::hint::black_box(&mut *state),
                core::hint::black_box(&*input),
                core::hint::black_box(&mut *output),
            );
            compiler_fence(Ordering::SeqCst);
            bench_end();
            if i == 0 && predict_peak == 0 {
                predict_peak = stack_peak(stack.0, stack.1);
            }
        }
        gen::store_output(output, o);
        put(b"OUT ");
        put_dec(put, i);
        put(b" ");
        put_hex(put, core::hint::black_box(&o[..]));
        put(b"\n");
    }
    put(b"stack_peak=");
    put_dec(put, stack_peak(stack.0, stack.1));
    put(b" stack_predict=");
    put_dec(put, predict_peak);
    put(b" stack_region=");
    put_dec(put, stack.1 - stack.0);
    put(b" stack_model=");
    put_dec(put, sp_call.saturating_sub(stack.1 - predict_peak));
    put(b"\nDONE\n");
}
