fn main() {
    // Writes $OUT_DIR/hello_world_float.rs (only when its contents change) and prints
    // cargo:rerun-if-changed for the model.
    if let Err(e) = microgen::Builder::new("../models/hello_world_float.tflite").compile() {
        panic!("{e}");
    }
}
