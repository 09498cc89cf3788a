//! Bare-metal RV32IMC firmware for `qemu-system-riscv32 -M virt -bios none`: runs the model
//! chosen at build time on the compiled-in samples, prints the outputs on the virt 16550 UART
//! (0x1000_0000), exits QEMU through the SiFive test device (0x10_0000: 0x5555 = exit 0,
//! (code << 16) | 0x3333 = exit `code`). See ../common/harness.rs for the output format.
#![no_std]
#![no_main]
use core::ptr::write_volatile;

mod gen {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}
#[path = "../../common/harness.rs"]
mod harness;

core::arch::global_asm!(
    ".section .text.init, \"ax\"",
    ".global _start",
    "_start:",
    ".option push", ".option norelax", "la gp, __global_pointer$", ".option pop",
    "la sp, _stack_top",
    "la t0, _trap",
    "csrw mtvec, t0",
    "la t0, __bss_start",
    "la t1, __bss_end",
    "1: bgeu t0, t1, 2f",
    "sw zero, 0(t0)",
    "addi t0, t0, 4",
    "j 1b",
    "2: call main",
    "3: j 3b",
    ".balign 4",
    "_trap: call fw_trap",
);

extern "C" {
    static _stack_top: u32;
    static __bss_end: u32;
}

const UART: *mut u8 = 0x1000_0000 as *mut u8;
const TEST: *mut u32 = 0x0010_0000 as *mut u32;

fn put(s: &[u8]) {
    for &b in s {
        unsafe { write_volatile(UART, b) }
    }
}

fn exit(code: u16) -> ! {
    let v = if code == 0 { 0x5555 } else { ((code as u32) << 16) | 0x3333 };
    unsafe { write_volatile(TEST, v) };
    loop {}
}

#[no_mangle]
extern "C" fn main() -> ! {
    let (bottom, top) = (&raw const __bss_end as usize, &raw const _stack_top as usize);
    harness::paint_stack(bottom);
    harness::run(put, env!("FW_TARGET"), (bottom, top));
    exit(0)
}

/// Any exception (illegal instruction, misaligned or faulting access): report and exit 102.
#[no_mangle]
extern "C" fn fw_trap() -> ! {
    let (cause, pc): (usize, usize);
    unsafe { core::arch::asm!("csrr {0}, mcause", "csrr {1}, mepc", out(reg) cause, out(reg) pc) };
    put(b"TRAP mcause=0x");
    harness::put_hex(put, &(cause as u32).to_be_bytes());
    put(b" mepc=0x");
    harness::put_hex(put, &(pc as u32).to_be_bytes());
    put(b"\n");
    exit(102)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    harness::put_panic(put, info);
    exit(101)
}
