// link.x on the linker search path + the model selection.
include!("../common/build_model.rs");

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::copy("link.x", out.join("link.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=link.x");
    println!("cargo:rustc-env=FW_TARGET={}", std::env::var("TARGET").unwrap());
    fw_gen_model();
}
