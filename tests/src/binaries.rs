//! Locating the workspace's binaries.

use std::path::PathBuf;

/// Path of a workspace binary: `$FERRY_BIN_DIR/<name>` when set, else the target
/// directory the running test was built into (`target/<profile>/`).
pub fn path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("FERRY_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // Test executables live in target/<profile>/deps/, binaries (the benchmarks)
            // beside the ones they start.
            let exe = std::env::current_exe().expect("path of the running executable");
            let dir = exe.parent().expect("executable has a parent directory");
            if dir.ends_with("deps") {
                dir.parent()
                    .expect("deps directory has a parent")
                    .to_path_buf()
            } else {
                dir.to_path_buf()
            }
        }
    };
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` \
         (or point FERRY_BIN_DIR at them)",
        bin.display()
    );
    bin
}
