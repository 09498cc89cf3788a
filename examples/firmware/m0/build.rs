// memory.x (chosen by MICROGEN_M0_BOARD) on the linker search path + the model selection.
include!("../common/build_model.rs");

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=MICROGEN_M0_BOARD");
    let mem = match std::env::var("MICROGEN_M0_BOARD").as_deref() {
        Ok("") | Ok("microbit") | Err(_) => "memory-microbit.x",
        Ok("mps2-an385") | Ok("mps2") => "memory-mps2.x",
        Ok(b) => panic!("MICROGEN_M0_BOARD={b}: expected microbit or mps2-an385"),
    };
    std::fs::copy(mem, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={mem}");
    println!("cargo:rustc-env=FW_TARGET={}", std::env::var("TARGET").unwrap());
    fw_gen_model();
}
