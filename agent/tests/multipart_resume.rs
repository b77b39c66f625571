//! Resumable multipart uploads against the in-process S3 server: a fresh upload, a
//! resume after an interruption, a resume after the source changed, a resume of an
//! upload the server does not know (refused, or with the connection broken), a source
//! that changes mid-copy, and parts taking
//! turns for a memory budget that holds one. What is
//! checked is what a user would: the bytes at the destination (read with an
//! independent client), the hash Ferry reports, and how many parts went over the wire.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use ferry_agent::{
    budget::MemoryBudget,
    parts::{JournalError, PartDone, UploadJournal, UploadState},
    s3::{upload_resumable, S3Dataset},
    Copied, CopyOptions,
};
use ferry_storage::{ObjectError, SiteAccess, Store};
use ferry_tests::{dataset::noise, s3::error_chain, S3Server};
use xxhash_rust::xxh3::xxh3_128;

const MIB: usize = 1024 * 1024;
const PART: usize = 5 * MIB;
const KEY: &str = "big/object.bin";
const BUCKET: &str = "dest";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Started { upload_id: String, part_size: u64 },
    PartDone { upload_id: String, part: PartDone },
}

/// Runs after a part is journalled (to change the source mid-copy).
type PartHook = Box<dyn Fn(&PartDone) + Send + Sync>;

/// Records every call; can refuse `part_done` once `limit` parts are recorded, and run
/// a hook on each recorded part.
#[derive(Default)]
struct Journal {
    events: Mutex<Vec<Event>>,
    limit: Option<usize>,
    on_part: Option<PartHook>,
}

impl Journal {
    fn failing_after(parts: usize) -> Journal {
        Journal {
            limit: Some(parts),
            ..Journal::default()
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn started(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Started { upload_id, .. } => Some(upload_id),
                Event::PartDone { .. } => None,
            })
            .collect()
    }

    fn parts(&self) -> Vec<(String, PartDone)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::PartDone { upload_id, part } => Some((upload_id, part)),
                Event::Started { .. } => None,
            })
            .collect()
    }

    /// The resume state this journal's records describe (one upload).
    fn state(&self) -> UploadState {
        let events = self.events();
        let Some(Event::Started {
            upload_id,
            part_size,
        }) = events.first().cloned()
        else {
            panic!("journal starts without `started`: {events:?}");
        };
        UploadState {
            upload_id,
            part_size,
            parts: self.parts().into_iter().map(|(_, p)| p).collect(),
        }
    }
}

impl UploadJournal for Journal {
    async fn started(
        &self,
        key: &str,
        upload_id: &str,
        part_size: u64,
    ) -> Result<(), JournalError> {
        assert_eq!(key, KEY);
        self.events.lock().unwrap().push(Event::Started {
            upload_id: upload_id.to_owned(),
            part_size,
        });
        Ok(())
    }

    async fn part_done(
        &self,
        key: &str,
        upload_id: &str,
        part: &PartDone,
    ) -> Result<(), JournalError> {
        assert_eq!(key, KEY);
        {
            let mut events = self.events.lock().unwrap();
            let recorded = events
                .iter()
                .filter(|e| matches!(e, Event::PartDone { .. }))
                .count();
            if self.limit.is_some_and(|limit| recorded >= limit) {
                return Err(JournalError("journal unavailable".into()));
            }
            events.push(Event::PartDone {
                upload_id: upload_id.to_owned(),
                part: part.clone(),
            });
        }
        if let Some(hook) = &self.on_part {
            hook(part);
        }
        Ok(())
    }
}

/// An S3 server with a destination bucket, and a file-system source.
struct Fixture {
    server: S3Server,
    dst: S3Dataset,
    src: Store,
    src_file: PathBuf,
    _src_dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(bytes: &[u8]) -> Fixture {
        let server = S3Server::start().await;
        server.create_bucket(BUCKET).await;
        let access = common::s3_site_access(&server, BUCKET, "datasets/ds");
        let dst = common::s3_dataset(&access);

        let src_dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(src_dir.path()).unwrap();
        let src = Store::open(&SiteAccess {
            uri: format!("file://{}", root.display()),
            options: BTreeMap::new(),
            credentials: BTreeMap::new(),
            path: "ds".to_owned(),
        })
        .unwrap();
        let src_file = root.join("ds").join(KEY);
        std::fs::create_dir_all(src_file.parent().unwrap()).unwrap();
        std::fs::write(&src_file, bytes).unwrap();
        Fixture {
            server,
            dst,
            src,
            src_file,
            _src_dir: src_dir,
        }
    }

    async fn upload(
        &self,
        resume: Option<UploadState>,
        concurrency: usize,
        journal: &Journal,
    ) -> Result<Copied, ObjectError> {
        let options = CopyOptions {
            chunk_size: PART,
            concurrency,
            ..CopyOptions::default()
        };
        send(upload_resumable(
            self.src.op(),
            &self.dst,
            KEY,
            resume,
            &options,
            journal,
        ))
        .await
    }

    async fn read_back(&self) -> Vec<u8> {
        let out = self
            .server
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(self.dst.object_key(KEY))
            .send()
            .await
            .unwrap_or_else(|e| panic!("reading back {KEY}: {}", error_chain(&e)));
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// The etag the server gives the object now.
    async fn etag(&self) -> String {
        let head = self
            .server
            .client()
            .head_object()
            .bucket(BUCKET)
            .key(self.dst.object_key(KEY))
            .send()
            .await
            .unwrap_or_else(|e| panic!("stat of {KEY}: {}", error_chain(&e)));
        head.e_tag().unwrap().to_owned()
    }

    /// Parts the server holds for `upload_id`; 0 once it is aborted (s3s-fs lists an
    /// unknown upload as empty, S3 answers NoSuchUpload).
    async fn parts_held(&self, upload_id: &str) -> usize {
        match self
            .server
            .client()
            .list_parts()
            .bucket(BUCKET)
            .key(self.dst.object_key(KEY))
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(listed) => listed.parts().len(),
            Err(_) => 0,
        }
    }
}

/// The agent spawns copies on a multi-thread runtime: the future must be `Send`.
fn send<F: Future + Send>(future: F) -> F {
    future
}

fn part_of(bytes: &[u8], number: u32) -> &[u8] {
    let start = (number as usize - 1) * PART;
    &bytes[start..(start + PART).min(bytes.len())]
}

/// Checks each journalled part's size and hash against the source.
fn assert_parts_match(parts: &[(String, PartDone)], upload_id: &str, bytes: &[u8]) {
    for (id, part) in parts {
        assert_eq!(id, upload_id);
        let expected = part_of(bytes, part.number);
        assert_eq!(part.size, expected.len() as u64, "part {}", part.number);
        assert_eq!(part.xxh3, xxh3_128(expected), "part {}", part.number);
        assert!(!part.etag.is_empty(), "part {}", part.number);
    }
}

fn numbers(parts: &[(String, PartDone)]) -> Vec<u32> {
    let mut numbers: Vec<u32> = parts.iter().map(|(_, p)| p.number).collect();
    numbers.sort_unstable();
    numbers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_upload_sends_every_part_once() {
    let bytes = noise(40 * MIB, 1);
    let fx = Fixture::new(&bytes).await;
    let journal = Journal::default();

    let copied = fx.upload(None, 3, &journal).await.unwrap();

    assert_eq!(
        copied,
        Copied {
            size: bytes.len() as u64,
            source_xxh3: xxh3_128(&bytes),
            etag: Some(fx.etag().await),
            metadata_dropped: false,
        }
    );
    assert!(fx.read_back().await == bytes, "destination differs");
    let writes = fx.server.writes();
    assert_eq!(
        (writes.single_puts, writes.multipart_uploads, writes.parts),
        (0, 1, 8)
    );
    let events = journal.events();
    assert_eq!(events.len(), 9, "{events:?}");
    let Event::Started {
        upload_id,
        part_size,
    } = &events[0]
    else {
        panic!("first journal call is not `started`: {events:?}");
    };
    assert_eq!(*part_size, PART as u64);
    let parts = journal.parts();
    assert_eq!(numbers(&parts), (1..=8).collect::<Vec<_>>());
    assert_parts_match(&parts, upload_id, &bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_part_object() {
    let bytes = noise(3 * MIB + 17, 2);
    let fx = Fixture::new(&bytes).await;
    let journal = Journal::default();

    let copied = fx.upload(None, 3, &journal).await.unwrap();

    assert_eq!(copied.source_xxh3, xxh3_128(&bytes));
    assert!(fx.read_back().await == bytes, "destination differs");
    assert_eq!(fx.server.writes().parts, 1);
    assert_eq!(journal.parts().len(), 1);
}

/// Runs an upload whose journal fails after 3 parts: the copy fails as temporary and
/// the upload stays on the server with exactly the journalled parts still usable.
async fn interrupted(fx: &Fixture, bytes: &[u8]) -> (UploadState, Journal) {
    let journal = Journal::failing_after(3);
    let err = fx.upload(None, 3, &journal).await.unwrap_err();
    // Parts in flight when the journal failed were abandoned, not cancelled at the
    // server: let them land before the test goes on.
    fx.server.wait_idle().await;
    assert!(err.is_temporary(), "{err:?}");
    assert!(
        err.message.contains("journal unavailable"),
        "{}",
        err.message
    );
    let state = journal.state();
    assert_eq!(state.parts.len(), 3);
    assert_eq!(state.part_size, PART as u64);
    assert_parts_match(&journal.parts(), &state.upload_id, bytes);
    assert!(
        fx.parts_held(&state.upload_id).await >= 3,
        "the interrupted upload was not kept"
    );
    (state, journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_uploads_only_the_missing_parts() {
    let bytes = noise(40 * MIB, 3);
    let fx = Fixture::new(&bytes).await;
    let (state, _) = interrupted(&fx, &bytes).await;
    let before = fx.server.writes();

    let journal = Journal::default();
    let copied = fx.upload(Some(state.clone()), 3, &journal).await.unwrap();

    assert_eq!(copied.size, bytes.len() as u64);
    assert_eq!(copied.source_xxh3, xxh3_128(&bytes));
    assert!(fx.read_back().await == bytes, "destination differs");
    let after = fx.server.writes();
    assert_eq!(after.multipart_uploads, before.multipart_uploads);
    assert_eq!(after.parts - before.parts, 8 - 3);
    assert!(journal.started().is_empty());
    let parts = journal.parts();
    assert_parts_match(&parts, &state.upload_id, &bytes);
    let mut all: Vec<u32> = numbers(&parts);
    all.extend(state.parts.iter().map(|p| p.number));
    all.sort_unstable();
    assert_eq!(all, (1..=8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_uploads_a_journalled_part_again_when_the_source_changed_there() {
    let bytes = noise(40 * MIB, 4);
    let fx = Fixture::new(&bytes).await;
    let (state, _) = interrupted(&fx, &bytes).await;
    // Same size, other bytes, in one of the parts the server already holds.
    let changed_part = state.parts[0].number;
    let mut new_bytes = bytes.clone();
    let start = (changed_part as usize - 1) * PART;
    new_bytes[start..start + PART].copy_from_slice(&noise(PART, 99));
    std::fs::write(&fx.src_file, &new_bytes).unwrap();
    let before = fx.server.writes();

    let journal = Journal::default();
    let copied = fx.upload(Some(state.clone()), 3, &journal).await.unwrap();

    assert_eq!(copied.source_xxh3, xxh3_128(&new_bytes));
    assert!(fx.read_back().await == new_bytes, "destination differs");
    let after = fx.server.writes();
    assert_eq!(after.multipart_uploads, before.multipart_uploads);
    assert_eq!(after.parts - before.parts, 8 - 3 + 1);
    let parts = journal.parts();
    assert!(numbers(&parts).contains(&changed_part));
    assert_parts_match(&parts, &state.upload_id, &new_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_take_turns_when_the_memory_budget_holds_one() {
    let bytes = noise(40 * MIB, 8);
    let fx = Fixture::new(&bytes).await;
    let budget = Arc::new(MemoryBudget::new(PART as u64));
    let options = CopyOptions {
        chunk_size: PART,
        concurrency: 4,
        part_budget: Some(budget.clone()),
        ..CopyOptions::default()
    };
    // Watches the budget while the upload runs: parts must draw on it.
    let lowest = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = {
        let (budget, lowest) = (budget.clone(), lowest.clone());
        tokio::spawn(async move {
            loop {
                lowest.fetch_min(budget.free_bytes(), Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };

    let journal = Journal::default();
    let copied = tokio::time::timeout(
        Duration::from_secs(60),
        send(upload_resumable(
            fx.src.op(),
            &fx.dst,
            KEY,
            None,
            &options,
            &journal,
        )),
    )
    .await
    .expect("four parts in flight wait their turn for a one-part budget, not forever")
    .unwrap();
    watcher.abort();

    assert_eq!(copied.source_xxh3, xxh3_128(&bytes));
    assert!(fx.read_back().await == bytes, "destination differs");
    assert_eq!(
        lowest.load(Ordering::SeqCst),
        0,
        "a part was read without its room"
    );
    assert_eq!(
        budget.free_bytes(),
        budget.total_bytes(),
        "every part gave its room back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_an_unknown_upload_starts_a_new_one() {
    let bytes = noise(40 * MIB, 5);
    let fx = Fixture::new(&bytes).await;
    let stale = "0b7e3b9c-5d1a-4c4e-9a51-3c1f2d8e7a60".to_owned();
    // Part 1 as it would have been journalled: it must not be trusted.
    let state = UploadState {
        upload_id: stale.clone(),
        part_size: PART as u64,
        parts: vec![PartDone {
            number: 1,
            size: PART as u64,
            etag: "\"0123456789abcdef0123456789abcdef\"".to_owned(),
            xxh3: xxh3_128(part_of(&bytes, 1)),
        }],
    };
    let journal = Journal::default();

    // One part in flight, so only part 1 meets the unknown upload.
    let copied = fx.upload(Some(state), 1, &journal).await.unwrap();

    let new = assert_started_anew(&fx, &journal, &stale, &bytes, &copied).await;
    let parts = journal.parts();
    assert_eq!(numbers(&parts), (1..=8).collect::<Vec<_>>());
    assert_parts_match(&parts, &new, &bytes);
}

/// After a resume of the `stale` upload: the bytes arrived through one new upload,
/// which got every part exactly once. The stale upload was tried first; the SDK may
/// retry a refusal it could not read, so only a lower bound holds for it. Returns the
/// new upload's id.
async fn assert_started_anew(
    fx: &Fixture,
    journal: &Journal,
    stale: &str,
    bytes: &[u8],
    copied: &Copied,
) -> String {
    assert_eq!(copied.source_xxh3, xxh3_128(bytes));
    assert!(fx.read_back().await == bytes, "destination differs");
    assert_eq!(fx.server.writes().multipart_uploads, 1);
    let started = journal.started();
    assert_eq!(started.len(), 1);
    assert_ne!(started[0], stale);
    assert!(fx.server.parts_sent_to(stale) >= 1);
    assert_eq!(fx.server.parts_sent_to(&started[0]), 8);
    started[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_whose_parts_break_the_connection_starts_a_new_upload() {
    let bytes = noise(40 * MIB, 9);
    let fx = Fixture::new(&bytes).await;
    let stale = "6f1d0c2e-8a4b-4f7e-b3c5-2d9e0a1b4c77".to_owned();
    fx.server.faults().break_parts_of(&stale);
    let state = UploadState {
        upload_id: stale.clone(),
        part_size: PART as u64,
        parts: Vec::new(),
    };
    let journal = Journal::default();

    let copied = fx.upload(Some(state), 1, &journal).await.unwrap();

    assert_started_anew(&fx, &journal, &stale, &bytes, &copied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_another_part_size_aborts_the_old_upload() {
    let bytes = noise(40 * MIB, 6);
    let fx = Fixture::new(&bytes).await;
    let (mut state, _) = interrupted(&fx, &bytes).await;
    let old = state.upload_id.clone();
    state.part_size = 8 * MIB as u64;
    let before = fx.server.writes();

    let journal = Journal::default();
    let copied = fx.upload(Some(state), 3, &journal).await.unwrap();

    assert_eq!(copied.source_xxh3, xxh3_128(&bytes));
    assert!(fx.read_back().await == bytes, "destination differs");
    let after = fx.server.writes();
    assert_eq!(after.multipart_uploads - before.multipart_uploads, 1);
    assert_eq!(after.parts - before.parts, 8);
    assert_eq!(
        fx.parts_held(&old).await,
        0,
        "the old upload was not aborted"
    );
    let started = journal.started();
    assert_eq!(started.len(), 1);
    assert_ne!(started[0], old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_growing_mid_copy_aborts_and_the_next_attempt_starts_over() {
    let bytes = noise(40 * MIB, 7);
    let fx = Fixture::new(&bytes).await;
    let path = fx.src_file.clone();
    let mut grown = bytes.clone();
    grown.extend_from_slice(b"appended while copying");
    let appended = grown.clone();
    let journal = Journal {
        // Replaced atomically, as a writer that renames a finished file does: a
        // truncate-then-write could let a read see a half-written file instead.
        on_part: Some(Box::new(move |_| {
            let staged = path.with_extension("staged");
            std::fs::write(&staged, &appended).unwrap();
            std::fs::rename(&staged, &path).unwrap();
        })),
        ..Journal::default()
    };

    let err = fx.upload(None, 3, &journal).await.unwrap_err();

    assert!(err.is_temporary(), "{err:?}");
    assert!(err.message.contains("changed"), "{}", err.message);
    let state = journal.state();
    assert_eq!(
        fx.parts_held(&state.upload_id).await,
        0,
        "upload not aborted"
    );
    let status = fx
        .server
        .client()
        .head_object()
        .bucket(BUCKET)
        .key(fx.dst.object_key(KEY))
        .send()
        .await;
    assert!(
        status.is_err(),
        "an object was completed from a moving source"
    );

    // The journal still names the aborted upload; the next attempt replaces it.
    let again = Journal::default();
    let copied = fx.upload(Some(state.clone()), 3, &again).await.unwrap();
    assert_eq!(copied.size, grown.len() as u64);
    assert_eq!(copied.source_xxh3, xxh3_128(&grown));
    assert!(fx.read_back().await == grown, "destination differs");
    assert_eq!(again.started().len(), 1);
    assert_ne!(again.started()[0], state.upload_id);
}
