//! The whole pipeline: read, passes, plan (with the independent checker), codegen.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = microgen::compile(data, &microgen::Options::new("fuzz.tflite"));
});
