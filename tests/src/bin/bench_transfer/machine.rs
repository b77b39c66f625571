//! Readings of this machine and the S3 server's disk: CPU and memory from /proc, the
//! page cache settled before a run, buckets emptied between rounds, workloads generated.

use super::*;

/// CPU seconds the host has taken from this machine since boot, all cores together.
pub(crate) fn machine_steal() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    stat.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(8))
        .and_then(|t| t.parse::<f64>().ok())
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// The S3 server's CPU seconds so far (exited threads included); none without one.
pub(crate) fn server_cpu(server: Option<&Server>) -> f64 {
    server.map_or(0.0, Server::cpu_seconds)
}

/// A process's CPU seconds (user + system) and peak RSS, from /proc.
pub(crate) fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    // The kernel reports CPU time in clock ticks of 1/100 s on Linux.
    Some((ticks / 100.0, hwm))
}

/// Puts every run on the same footing: the files of its source (the workload's files;
/// for W3 the source bucket's files on the server's disk, [`Server::stored`]) are read
/// into the page cache, then the dirty pages are written out, so that no run pays for
/// the writeback of what an earlier one wrote (the large workloads leave gigabytes
/// behind).
///
/// The read matters because rclone drops from the page cache what it has read
/// (`posix_fadvise(POSIX_FADV_DONTNEED)` in its local backend), and this machine's host
/// pages out file pages left idle for a minute (a DAMON `pageout` scheme). Without it
/// the run after an rclone run, or after a pause, reads its source from disk: that was
/// Ferry's quick run of each round after the first, and rclone's second variant.
pub(crate) fn settle(source: &[PathBuf]) -> anyhow::Result<()> {
    for path in source {
        read_tree(path)
            .with_context(|| format!("reading {} into the page cache", path.display()))?;
    }
    let _ = Command::new("sync").status();
    Ok(())
}

/// The files on the S3 server's disk that hold the objects below `prefix` (a bucket and
/// a key prefix): the prefix's directory, and every object metadata file beside the
/// buckets (those of this round only, as [`empty_buckets`] moves earlier ones aside).
pub(crate) fn in_bucket(root: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![root.join(prefix)];
    files.extend(metadata_files(root)?);
    Ok(files)
}

/// The files s3s-fs keeps an object's metadata in, beside the buckets: named
/// `.bucket-<bucket>.object-<key>…`.
pub(crate) fn metadata_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_file()
            && entry.file_name().to_string_lossy().starts_with(".bucket-")
        {
            files.push(entry.path());
        }
    }
    Ok(files)
}

/// Reads every file below `path`, or `path` itself if it is a file.
pub(crate) fn read_tree(path: &Path) -> std::io::Result<()> {
    if !path.is_dir() {
        std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        read_tree(&entry?.path())?;
    }
    Ok(())
}

/// Resets a process's peak RSS so the next reading covers one run only.
pub(crate) fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Empties `buckets` between rounds, so that every round starts from the same server
/// state: s3s-fs lists a prefix by walking (and stat'ing) its whole bucket, so each
/// round's listings would otherwise also walk every earlier round's objects. s3s-fs
/// keeps nothing in memory: a bucket is a directory, and an object's metadata lives in
/// files named `.bucket-<bucket>.object-<key>…` beside the buckets. They are moved
/// aside, not deleted: on ext4 without a journal (this machine's root file system)
/// allocating an inode skips every inode freed in the last minutes, so for a while
/// after tens of thousands of files are deleted each file the server creates costs many
/// times its usual CPU (`recently_deleted` in the kernel's profile).
pub(crate) fn empty_buckets(root: &Path, buckets: &[&str], round: usize) -> anyhow::Result<()> {
    let aside = root.join(format!(".emptied-{round}"));
    std::fs::create_dir(&aside)?;
    for bucket in buckets {
        let dir = root.join(bucket);
        std::fs::rename(&dir, aside.join(bucket))?;
        std::fs::create_dir(&dir)?;
    }
    for file in metadata_files(root)? {
        if let Some(name) = file.file_name() {
            std::fs::rename(&file, aside.join(name))?;
        }
    }
    Ok(())
}

pub(crate) fn link_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else {
            std::fs::hard_link(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub(crate) fn generate(dir: &Path, files: usize, size: usize, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..files {
        // 1,000 files per directory, as a real tree would spread them.
        let path = dir.join(generated_key(i));
        if i % 1000 == 0 {
            std::fs::create_dir_all(path.parent().context("a generated key has a parent")?)?;
        }
        std::fs::write(path, bytes(seed + i as u64, size))?;
    }
    Ok(())
}

/// The key of the `i`th generated file: 1,000 files per directory, as a real tree
/// would spread them.
pub(crate) fn generated_key(i: usize) -> String {
    format!("d{:03}/f{i:06}.bin", i / 1000)
}
