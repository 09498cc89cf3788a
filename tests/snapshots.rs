//! Snapshots of generated code (insta): a change in a kernel shows up as a readable diff.
//! One snapshot per operator family on the project's own small models. Review changes
//! with `cargo insta review`; CI runs `cargo insta test --check`-equivalent (`INSTA_UPDATE=no`).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn generated(model: &str) -> String {
    let path = repo().join("tests/models").join(model);
    let bytes = std::fs::read(&path).unwrap();
    microgen::compile(&bytes, &microgen::Options::new(model)).unwrap().code
}

macro_rules! snap {
    ($name:ident, $model:expr) => {
        #[test]
        fn $name() {
            let code = generated($model);
            insta::with_settings!({ snapshot_path => repo().join("tests/snapshots"), prepend_module_to_snapshot => false }, {
                insta::assert_snapshot!(stringify!($name), code);
            });
        }
    };
}

snap!(fully_connected_int8, "fc_relu_int8.tflite");
snap!(fully_connected_f32, "fc_relu_f32.tflite");
snap!(logistic_tanh_int8, "fc_tanh_sigmoid_int8.tflite");
snap!(softmax_int8, "softmax_beta_int8.tflite");
snap!(add_two_inputs_int8, "add_two_inputs_int8.tflite");
snap!(quantize_dequantize, "quant_dequant_int8.tflite");

#[test]
fn generation_is_deterministic() {
    for m in ["fc_relu_int8.tflite", "add_two_inputs_f32.tflite", "softmax_beta_int8.tflite"] {
        assert_eq!(generated(m), generated(m), "{m}: two compilations differ");
    }
}
snap!(stateful_ring_buffer_int8, "stream_ring_int8.tflite");
