//! Generates the ferry.v1 messages and service stubs into OUT_DIR, plus the file
//! descriptor set that server reflection serves.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "ferry/v1/common.proto",
    "ferry/v1/site.proto",
    "ferry/v1/dataset.proto",
    "ferry/v1/policy.proto",
    "ferry/v1/access.proto",
    "ferry/v1/recommendation.proto",
    "ferry/v1/job.proto",
    "ferry/v1/agent.proto",
    "ferry/v1/bus.proto",
    "ferry/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A protoc from the environment wins (Debian's protobuf-compiler, say); otherwise the
    // vendored one, so a fresh machine builds without installing anything.
    if env::var_os("PROTOC").is_none() {
        env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();
    println!("cargo:rerun-if-changed=ferry");
    println!("cargo:rerun-if-env-changed=PROTOC");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("ferry_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from("."), well_known])?;
    Ok(())
}
