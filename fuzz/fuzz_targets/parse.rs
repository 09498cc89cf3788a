//! The TFLite reader alone: any bytes must give a graph or an error, never a panic, a
//! hang or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = microgen::frontend::tflite::read(data, "fuzz.tflite");
});
