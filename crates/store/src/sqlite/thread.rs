//! The database threads: every statement runs on a thread of its own, off
//! the async workers, and the writer commits whatever has queued up in one
//! transaction (group commit), each job inside a savepoint so that one
//! failing job does not undo the others.
//!
//! Jobs come in two kinds. Delivery's jobs (claims, write-ahead marks,
//! settlements) are waited on by requests about to leave, so they go
//! first. Bulk jobs (the pieces of a large audience's enqueue) run only
//! when no delivery job waits (or after [`URGENT_GROUPS_BEFORE_BULK`]
//! delivery groups in a row), one after another in a transaction of their
//! own that ends as soon as a delivery job arrives, and without
//! savepoints: an audience being enqueued no longer holds every channel's
//! deliveries behind it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

/// Why a job failed.
#[derive(Debug)]
pub(crate) enum JobError {
    /// SQLite said no.
    Sqlite(rusqlite::Error),
    /// A stored value could not be read back.
    Corrupt(String),
}

impl From<rusqlite::Error> for JobError {
    fn from(error: rusqlite::Error) -> Self {
        JobError::Sqlite(error)
    }
}

impl From<serde_json::Error> for JobError {
    fn from(error: serde_json::Error) -> Self {
        JobError::Corrupt(error.to_string())
    }
}

/// What a job's closure returns.
pub(crate) type JobResult<T> = Result<T, JobError>;

/// Delivers a job's result once the transaction it ran in has committed.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job: runs on the database thread (or, when its transaction could not
/// start, is told why), says whether it succeeded (or why not), and
/// returns how to deliver its result.
type Job =
    Box<dyn FnOnce(Result<&Connection, StoreError>) -> (Result<(), StoreError>, Reply) + Send>;

/// The most jobs committed in one transaction.
const MAX_GROUP: usize = 512;

/// Which queue a job waits in; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Run as soon as the thread is free, grouped with the others waiting.
    Urgent,
    /// Run only when no urgent job waits, in a transaction of bulk jobs
    /// only (see [`run`]).
    Bulk,
}

/// A thread that owns one connection and runs jobs on it.
pub(crate) struct DbThread {
    jobs: mpsc::Sender<(Priority, Job)>,
    database: PathBuf,
}

impl DbThread {
    /// Start a thread for `connection`. With `transactions`, jobs queued
    /// together run in one `BEGIN IMMEDIATE` … `COMMIT`.
    pub(crate) fn start(
        name: &str,
        connection: Connection,
        database: PathBuf,
        transactions: bool,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<(Priority, Job)>();
        let thread_database = database.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(connection, queue, transactions, thread_database))?;
        Ok(Self { jobs, database })
    }

    /// Run `work` on the thread and wait for it (and, on the writer, for
    /// its transaction to commit). `what` names the operation in errors.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.call_with(Priority::Urgent, what, work).await
    }

    /// [`call`](Self::call) for a job that may wait until no urgent job
    /// does (see [`Priority::Bulk`]).
    pub(crate) async fn call_bulk<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.call_with(Priority::Bulk, what, work).await
    }

    async fn call_with<T: Send + 'static>(
        &self,
        priority: Priority,
        what: &'static str,
        work: impl FnOnce(&Connection) -> JobResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (sender, receiver) = oneshot::channel();
        let database = self.database.clone();
        let job: Job = Box::new(move |connection| {
            let result = match connection {
                Ok(connection) => work(connection).map_err(|e| job_error(&database, what, e)),
                Err(error) => Err(error),
            };
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(error) => Err(error.clone()),
            };
            let reply: Reply = Box::new(move |committed| {
                let delivered = match (result, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(error)) | (Err(error), _) => Err(error),
                };
                let _ = sender.send(delivered);
            });
            (outcome, reply)
        });
        let closed = || StoreError::Closed {
            database: self.database.clone(),
        };
        self.jobs.send((priority, job)).map_err(|_| closed())?;
        receiver.await.map_err(|_| closed())?
    }
}

fn job_error(database: &std::path::Path, what: &str, error: JobError) -> StoreError {
    match error {
        JobError::Sqlite(error) => StoreError::Database {
            database: database.to_owned(),
            message: format!("{what}: {}", describe(&error)),
        },
        JobError::Corrupt(message) => StoreError::Corrupt {
            database: database.to_owned(),
            message: format!("{what}: {message}"),
        },
    }
}

/// SQLite's error in words an operator can act on.
pub(crate) fn describe(error: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => format!("the disk is full ({error})"),
        Some(ErrorCode::ReadOnly) => format!("the database is read-only ({error})"),
        Some(ErrorCode::CannotOpen) => format!("cannot open the file ({error})"),
        Some(ErrorCode::DatabaseBusy) => {
            format!("another process kept the database locked too long ({error})")
        }
        _ => error.to_string(),
    }
}

/// After this many groups of urgent jobs in a row, a waiting bulk job
/// runs next even if urgent jobs wait: a steady stream of deliveries slows
/// an audience being enqueued, but cannot stop it.
const URGENT_GROUPS_BEFORE_BULK: u32 = 8;

/// The jobs waiting on a thread, by priority.
struct Waiting<J> {
    urgent: VecDeque<J>,
    bulk: VecDeque<J>,
    /// Urgent groups run since the last bulk job, while one waited.
    urgent_in_a_row: u32,
}

impl<J> Waiting<J> {
    fn new() -> Self {
        Self {
            urgent: VecDeque::new(),
            bulk: VecDeque::new(),
            urgent_in_a_row: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.urgent.is_empty() && self.bulk.is_empty()
    }

    fn push(&mut self, (priority, job): (Priority, J)) {
        match priority {
            Priority::Urgent => self.urgent.push_back(job),
            Priority::Bulk => self.bulk.push_back(job),
        }
    }

    /// The next jobs to run together: every urgent job waiting (up to
    /// [`MAX_GROUP`]), or the oldest bulk job when none is, or when
    /// [`URGENT_GROUPS_BEFORE_BULK`] urgent groups have gone before it (the
    /// writer may add more bulk jobs to its transaction, see [`run`]).
    fn next_group(&mut self) -> (Priority, Vec<J>) {
        let bulk_turn = self.urgent.is_empty()
            || (!self.bulk.is_empty() && self.urgent_in_a_row >= URGENT_GROUPS_BEFORE_BULK);
        if bulk_turn && let Some(job) = self.bulk.pop_front() {
            self.urgent_in_a_row = 0;
            return (Priority::Bulk, vec![job]);
        }
        if !self.bulk.is_empty() {
            self.urgent_in_a_row += 1;
        }
        let take = self.urgent.len().min(MAX_GROUP);
        (Priority::Urgent, self.urgent.drain(..take).collect())
    }
}

fn run(
    connection: Connection,
    queue: mpsc::Receiver<(Priority, Job)>,
    transactions: bool,
    database: PathBuf,
) {
    let mut waiting = Waiting::new();
    loop {
        if waiting.is_empty() {
            match queue.recv() {
                Ok(job) => waiting.push(job),
                Err(_) => return,
            }
        }
        while let Ok(job) = queue.try_recv() {
            waiting.push(job);
        }
        let (priority, group) = waiting.next_group();
        if !transactions {
            for job in group {
                let (_, reply) = job(Ok(&connection));
                reply(Ok(()));
            }
            continue;
        }
        // A bulk job's transaction takes the bulk jobs after it too, one at
        // a time, until an urgent job arrives: an enqueue alone on the
        // writer commits once per chunk, not once per piece.
        let mut more_bulk = |ran: usize| -> Option<Job> {
            if priority != Priority::Bulk || ran >= MAX_BULK_PER_COMMIT {
                return None;
            }
            while let Ok(job) = queue.try_recv() {
                waiting.push(job);
            }
            if !waiting.urgent.is_empty() {
                return None;
            }
            waiting.bulk.pop_front()
        };
        run_in_transaction(&connection, &database, group, priority, &mut more_bulk);
    }
}

/// The most bulk jobs committed together (1,000 sends of an enqueue).
const MAX_BULK_PER_COMMIT: usize = 10;

/// Run `group` in one transaction, each job in a savepoint of its own when
/// it may not be alone, then the jobs `more` gives (told how many ran so
/// far); commit and deliver every result.
fn run_in_transaction(
    connection: &Connection,
    database: &std::path::Path,
    group: Vec<Job>,
    priority: Priority,
    more: &mut dyn FnMut(usize) -> Option<Job>,
) {
    let fail = |what: &str, error: rusqlite::Error| StoreError::Database {
        database: database.to_owned(),
        message: format!("{what}: {}", describe(&error)),
    };
    if let Err(error) = run_cached(connection, "BEGIN IMMEDIATE") {
        let error = fail("starting a transaction", error);
        for job in group {
            let (_, reply) = job(Err(error.clone()));
            reply(Err(error.clone()));
        }
        return;
    }
    // A job alone in its transaction needs no savepoint (whose journal
    // copies every page the job changes): if it fails, the whole
    // transaction is rolled back instead of committed. Neither do bulk
    // jobs, which would pay that copy for every page of an enqueue: one
    // that fails rolls back the bulk jobs before it in the transaction
    // too, and they are told so.
    let savepoints = priority == Priority::Urgent && group.len() > 1;
    let mut failure: Option<StoreError> = None;
    // Each job's reply, and whether the job itself failed.
    let mut replies: Vec<(Reply, bool)> = Vec::with_capacity(group.len());
    let mut jobs: VecDeque<Job> = group.into();
    while failure.is_none()
        && let Some(job) = jobs.pop_front().or_else(|| more(replies.len()))
    {
        let savepoint = savepoints.then(|| run_cached(connection, "SAVEPOINT job"));
        let (outcome, reply) = job(Ok(connection));
        let failed = outcome.is_err();
        match savepoint {
            None => failure = outcome.err(),
            Some(Ok(())) => {
                let undone = if failed {
                    run_cached(connection, "ROLLBACK TO job")
                } else {
                    Ok(())
                };
                if let Err(error) = undone.and_then(|()| run_cached(connection, "RELEASE job")) {
                    tracing::error!(%error, "could not end a savepoint");
                }
            }
            Some(Err(_)) => {}
        }
        replies.push((reply, failed));
    }
    let ended = if failure.is_some() {
        run_cached(connection, "ROLLBACK").map_err(|error| fail("rolling back", error))
    } else {
        run_cached(connection, "COMMIT").map_err(|error| fail("committing", error))
    };
    if ended.is_err() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    let undone = failure.map(|cause| StoreError::Database {
        database: database.to_owned(),
        message: format!(
            "not written: it shared a transaction with a write that failed and was rolled back ({cause})"
        ),
    });
    for (reply, failed) in replies {
        match &undone {
            Some(undone) if !failed => reply(Err(undone.clone())),
            _ => reply(ended.clone()),
        }
    }
}

/// Run a statement without parameters through the statement cache: the
/// transaction and savepoint statements run several times per commit, and
/// parsing them each time cost more than the jobs they wrap.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer thread on a fresh file holding one table of notes.
    fn writer(dir: &tempfile::TempDir) -> (DbThread, PathBuf) {
        let path = dir.path().join("jobs.db");
        let connection = Connection::open(&path).expect("open");
        connection
            .execute_batch("CREATE TABLE notes (text TEXT NOT NULL)")
            .expect("schema");
        let thread =
            DbThread::start("test-writer", connection, path.clone(), true).expect("thread");
        (thread, path)
    }

    /// Insert `text`, then fail if asked: a job that changed something
    /// before it failed.
    fn note(text: &'static str, fail: bool) -> impl FnOnce(&Connection) -> JobResult<()> + Send {
        move |connection| {
            connection.execute("INSERT INTO notes (text) VALUES (?1)", [text])?;
            if fail {
                return Err(JobError::Corrupt(format!("{text} failed on purpose")));
            }
            Ok(())
        }
    }

    fn notes(path: &std::path::Path) -> Vec<String> {
        let connection = Connection::open(path).expect("open");
        let mut statement = connection
            .prepare("SELECT text FROM notes ORDER BY rowid")
            .expect("select");
        statement
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Hold the writer in a job of its own while `jobs` (a note each, and
    /// whether it fails) queue up behind it, in this order; then let go and
    /// return their results. On this single-threaded runtime, yielding lets
    /// each task run to its first wait: every job is queued before we let
    /// go.
    async fn queued_behind_a_busy_writer(
        thread: DbThread,
        jobs: &[(&'static str, Priority, bool)],
    ) -> Vec<Result<(), String>> {
        let thread = std::sync::Arc::new(thread);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let blocker = {
            let thread = std::sync::Arc::clone(&thread);
            tokio::spawn(async move {
                thread
                    .call("holding the writer", move |_| {
                        let _ = started.send(());
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            })
        };
        running.await.expect("the writer picked up the first job");
        let queued: Vec<_> = jobs
            .iter()
            .map(|&(text, priority, fail)| {
                let thread = std::sync::Arc::clone(&thread);
                tokio::spawn(async move {
                    thread
                        .call_with(priority, "writing a note", note(text, fail))
                        .await
                })
            })
            .collect();
        for _ in 0..jobs.len() {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        blocker.await.expect("task").expect("the first job");
        let mut results = Vec::new();
        for task in queued {
            results.push(task.await.expect("task").map_err(|e| e.to_string()));
        }
        results
    }

    #[test]
    fn urgent_jobs_go_first_and_bulk_jobs_run_alone_in_order() {
        let mut waiting = Waiting::new();
        for job in [
            (Priority::Bulk, "b1"),
            (Priority::Urgent, "u1"),
            (Priority::Bulk, "b2"),
            (Priority::Urgent, "u2"),
        ] {
            waiting.push(job);
        }
        assert_eq!(waiting.next_group(), (Priority::Urgent, vec!["u1", "u2"]));
        assert_eq!(waiting.next_group(), (Priority::Bulk, vec!["b1"]));
        waiting.push((Priority::Urgent, "u3"));
        assert_eq!(waiting.next_group(), (Priority::Urgent, vec!["u3"]));
        assert_eq!(waiting.next_group(), (Priority::Bulk, vec!["b2"]));
        assert!(waiting.is_empty());
        assert!(waiting.next_group().1.is_empty());
    }

    #[test]
    fn a_stream_of_urgent_jobs_does_not_starve_a_bulk_job() {
        let mut waiting = Waiting::new();
        waiting.push((Priority::Bulk, "bulk"));
        let mut groups = Vec::new();
        // An urgent job is always waiting when a group ends.
        for _ in 0..=URGENT_GROUPS_BEFORE_BULK {
            waiting.push((Priority::Urgent, "urgent"));
            groups.push(waiting.next_group().1);
        }
        let bulk_turn = groups
            .iter()
            .position(|group| group == &["bulk"])
            .expect("the bulk job ran");
        assert_eq!(bulk_turn, URGENT_GROUPS_BEFORE_BULK as usize, "{groups:?}");
        // The urgent job that waited meanwhile runs next, and with no bulk
        // job waiting, urgent groups are not counted.
        assert_eq!(waiting.next_group(), (Priority::Urgent, vec!["urgent"]));
        assert_eq!(waiting.urgent_in_a_row, 0);
    }

    /// On the real thread: jobs queued while the writer is busy run urgent
    /// first, whatever order they came in.
    #[tokio::test]
    async fn delivery_jobs_pass_an_enqueue_waiting_in_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (thread, path) = writer(&dir);
        let results = queued_behind_a_busy_writer(
            thread,
            &[
                ("piece 1", Priority::Bulk, false),
                ("piece 2", Priority::Bulk, false),
                ("mark", Priority::Urgent, false),
                ("settlement", Priority::Urgent, false),
            ],
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(notes(&path), ["mark", "settlement", "piece 1", "piece 2"]);
    }

    /// Bulk jobs share a transaction without savepoints: one failing rolls
    /// back the ones before it, each told why, and the transaction ends
    /// there (the next bulk job starts a new one).
    #[tokio::test]
    async fn a_failing_piece_rolls_back_its_transaction_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (thread, path) = writer(&dir);
        let results = queued_behind_a_busy_writer(
            thread,
            &[
                ("piece 1", Priority::Bulk, false),
                ("piece 2", Priority::Bulk, true),
                ("piece 3", Priority::Bulk, false),
            ],
        )
        .await;
        assert!(
            results[0].as_ref().is_err_and(|e| e.contains(
                "not written: it shared a transaction with a write that failed and was rolled back"
            ) && e.contains("piece 2 failed on purpose")),
            "{results:?}"
        );
        assert!(
            results[1]
                .as_ref()
                .is_err_and(|e| e.contains("writing a note: piece 2 failed on purpose")),
            "{results:?}"
        );
        assert!(results[2].is_ok(), "{results:?}");
        assert_eq!(notes(&path), ["piece 3"]);
    }

    #[tokio::test]
    async fn a_job_that_fails_alone_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (thread, path) = writer(&dir);
        let error = thread
            .call("writing a note", note("lost", true))
            .await
            .expect_err("the job failed");
        assert!(
            error
                .to_string()
                .contains("writing a note: lost failed on purpose"),
            "{error}"
        );
        thread
            .call("writing a note", note("kept", false))
            .await
            .expect("the next job");
        assert_eq!(notes(&path), ["kept"]);
    }

    #[tokio::test]
    async fn a_failing_job_in_a_group_undoes_only_its_own_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (thread, path) = writer(&dir);
        // Queued together behind a busy writer, the three run together, in
        // one transaction.
        let results = queued_behind_a_busy_writer(
            thread,
            &[
                ("first", Priority::Urgent, false),
                ("second", Priority::Urgent, true),
                ("third", Priority::Urgent, false),
            ],
        )
        .await;
        assert!(results[0].is_ok(), "{results:?}");
        assert!(
            results[1]
                .as_ref()
                .is_err_and(|e| e.contains("second failed on purpose")),
            "{results:?}"
        );
        assert!(results[2].is_ok(), "{results:?}");
        assert_eq!(notes(&path), ["first", "third"]);
    }
}
