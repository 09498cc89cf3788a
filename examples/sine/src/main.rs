//! The sine model compiled at build time by `include_model!`, run on the host.

mod sine {
    microgen_macros::include_model!("../models/hello_world_int8.tflite");
}

fn main() {
    let mut arena = sine::Arena::new();
    println!("microgen sine example: arena {} bytes, {} MACs per inference", sine::ARENA_BYTES, sine::MACS);
    println!("{:>8} {:>10} {:>10} {:>8}", "x", "model", "sin(x)", "error");
    let mut worst = 0.0f32;
    for i in 0..=24 {
        let x = i as f32 * std::f32::consts::TAU / 24.0;
        let input: sine::Input = [sine::quantize_input(x)];
        let mut output: sine::Output = [0];
        sine::predict(&mut arena, &input, &mut output);
        let y = sine::dequantize_output(output[0]);
        worst = worst.max((y - x.sin()).abs());
        println!("{:>8.3} {:>10.4} {:>10.4} {:>8.4}", x, y, x.sin(), y - x.sin());
    }
    println!("largest error {worst:.4} (the model is a small regression net, not a sine table)");
}
