//! A float model compiled by `build.rs` and `include!`d from `OUT_DIR`.

mod sine {
    include!(concat!(env!("OUT_DIR"), "/hello_world_float.rs"));
}

fn main() {
    let mut arena = sine::Arena::new();
    let mut out: sine::Output = [0.0];
    for x in [0.0f32, 0.5, 1.0, 1.5, 3.0, 4.5, 6.0] {
        sine::predict(&mut arena, &[x], &mut out);
        println!("x = {x:4.1}  model {:8.4}  sin(x) {:8.4}", out[0], x.sin());
    }
}
