//! The database threads: every statement runs on a thread of its own, off
//! the async workers, and the writer commits whatever has queued up in one
//! transaction (group commit), each job inside a savepoint so that one
//! failing job does not undo the others.

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
/// start, is told why), says whether it succeeded, and returns how to
/// deliver its result.
type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> (bool, Reply) + Send>;

/// The most jobs committed in one transaction.
const MAX_GROUP: usize = 512;

/// A thread that owns one connection and runs jobs on it.
pub(crate) struct DbThread {
    jobs: mpsc::Sender<Job>,
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
        let (jobs, queue) = mpsc::channel::<Job>();
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
        let (sender, receiver) = oneshot::channel();
        let database = self.database.clone();
        let job: Job = Box::new(move |connection| {
            let result = match connection {
                Ok(connection) => work(connection).map_err(|e| job_error(&database, what, e)),
                Err(error) => Err(error),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let delivered = match (result, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(error)) | (Err(error), _) => Err(error),
                };
                let _ = sender.send(delivered);
            });
            (ok, reply)
        });
        let closed = || StoreError::Closed {
            database: self.database.clone(),
        };
        self.jobs.send(job).map_err(|_| closed())?;
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

fn run(connection: Connection, queue: mpsc::Receiver<Job>, transactions: bool, database: PathBuf) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if !transactions {
            for job in group {
                let (_, reply) = job(Ok(&connection));
                reply(Ok(()));
            }
            continue;
        }
        let fail = |what: &str, error: rusqlite::Error| StoreError::Database {
            database: database.clone(),
            message: format!("{what}: {}", describe(&error)),
        };
        if let Err(error) = run_cached(&connection, "BEGIN IMMEDIATE") {
            let error = fail("starting a transaction", error);
            for job in group {
                let (_, reply) = job(Err(error.clone()));
                reply(Err(error.clone()));
            }
            continue;
        }
        // A job alone in its transaction needs no savepoint (whose journal
        // copies every page the job changes): if it fails, the whole
        // transaction is rolled back instead of committed.
        let alone = group.len() == 1;
        let mut undo_all = false;
        let mut replies = Vec::with_capacity(group.len());
        for job in group {
            let savepoint = (!alone).then(|| run_cached(&connection, "SAVEPOINT job"));
            let (ok, reply) = job(Ok(&connection));
            match savepoint {
                None => undo_all = !ok,
                Some(Ok(())) => {
                    let undone = if ok {
                        Ok(())
                    } else {
                        run_cached(&connection, "ROLLBACK TO job")
                    };
                    if let Err(error) = undone.and_then(|()| run_cached(&connection, "RELEASE job"))
                    {
                        tracing::error!(%error, "could not end a savepoint");
                    }
                }
                Some(Err(_)) => {}
            }
            replies.push(reply);
        }
        let ended = if undo_all {
            run_cached(&connection, "ROLLBACK").map_err(|error| fail("rolling back", error))
        } else {
            run_cached(&connection, "COMMIT").map_err(|error| fail("committing", error))
        };
        if ended.is_err() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(ended.clone());
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
        let thread = std::sync::Arc::new(thread);
        // Hold the thread in a job of its own while three more queue up
        // behind it: they then run together, in one transaction.
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
        let queued: Vec<_> = [("first", false), ("second", true), ("third", false)]
            .into_iter()
            .map(|(text, fail)| {
                let thread = std::sync::Arc::clone(&thread);
                tokio::spawn(async move { thread.call("writing a note", note(text, fail)).await })
            })
            .collect();
        // On this single-threaded runtime, yielding once lets each task
        // run to its first wait: every job is queued before we let go.
        tokio::task::yield_now().await;
        release.send(()).expect("release");
        blocker.await.expect("task").expect("the first job");
        let mut results = Vec::new();
        for task in queued {
            results.push(task.await.expect("task").map_err(|e| e.to_string()));
        }
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
