// memory.x on the linker search path (cortex-m-rt's link.x INCLUDEs it) + the model selection.
include!("../common/build_model.rs");

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-env=FW_TARGET={}", std::env::var("TARGET").unwrap());
    fw_gen_model();
}
