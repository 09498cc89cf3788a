//! Cortex-M4F firmware (QEMU mps2-an386): runs the model chosen at build time on the
//! compiled-in samples, prints the outputs over semihosting, exits QEMU with 0.
//! See ../common/harness.rs for the output format and ../common/build_model.rs for the
//! build-time model selection.
#![no_std]
#![no_main]
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};

mod gen {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}
#[path = "../../common/harness.rs"]
mod harness;

extern "C" {
    static _stack_start: u32; // top of the stack (end of RAM), from cortex-m-rt's link.x
    static _stack_end: u32; // lowest stack address (end of .bss/.uninit)
}

fn put(b: &[u8]) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(b);
    }
}

#[entry]
fn main() -> ! {
    let (bottom, top) = (&raw const _stack_end as usize, &raw const _stack_start as usize);
    harness::paint_stack(bottom);
    harness::run(put, env!("FW_TARGET"), (bottom, top));
    debug::exit(debug::EXIT_SUCCESS);
    loop {}
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    put(b"HARDFAULT pc=0x");
    harness::put_hex(put, &ef.pc().to_be_bytes());
    put(b"\n");
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    harness::put_panic(put, info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
