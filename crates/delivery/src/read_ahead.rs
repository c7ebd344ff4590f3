//! Reading an audience on a thread of its own, a few chunks ahead of the
//! decisions.
//!
//! Reading a row (CSV, phone parsing and validation, duplicate ids) costs
//! about as much as deciding and writing it, so with the reader beside the
//! decisions an audience goes through on two cores instead of one. The
//! queue between them is bounded ([`CHUNKS_AHEAD`] chunks of
//! [`ROWS_PER_CHUNK`] rows), so memory stays flat whatever the audience's
//! size, and rows still arrive in file order.

use switchboard_core::ingest::{AudienceReader, AudienceRow, IngestError};
use tokio::sync::mpsc;

/// Rows handed over at a time: enough that the hand-over costs nothing per
/// row, few enough that the first decisions do not wait long.
const ROWS_PER_CHUNK: usize = 512;
/// Chunks the reader may be ahead of the decisions.
const CHUNKS_AHEAD: usize = 4;

/// One row as [`AudienceReader::next_row`] gives it.
type Row = Result<AudienceRow, IngestError>;

/// The rows of an audience, read by a thread of their own.
pub(crate) struct ReadAhead {
    chunks: mpsc::Receiver<Vec<Row>>,
    current: std::vec::IntoIter<Row>,
    /// The reading thread, for tests to see it end.
    #[cfg_attr(not(test), allow(dead_code))]
    thread: std::thread::JoinHandle<()>,
}

impl ReadAhead {
    /// Start reading `reader` on a new thread. The thread stops at the end
    /// of the file, after an error that stops the file, or as soon as this
    /// is dropped.
    pub(crate) fn start(mut reader: AudienceReader) -> std::io::Result<Self> {
        let file = reader.path().to_path_buf();
        Self::start_reading(file, move || reader.next_row())
    }

    /// Start taking rows from `next` on a new thread. If `next` panics
    /// (a bug in reading some row), the rows so far are kept and an error
    /// that stops the file follows them: the campaign stops and says so,
    /// instead of taking the rows so far for the whole audience.
    fn start_reading(
        file: std::path::PathBuf,
        mut next: impl FnMut() -> Option<Row> + Send + 'static,
    ) -> std::io::Result<Self> {
        let mut rows_read: u64 = 0;
        let mut next_row = move || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            &mut next,
        )) {
            Ok(row) => {
                rows_read += 1;
                row
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                Some(Err(IngestError::Read {
                    file: file.clone(),
                    source: std::io::Error::other(format!(
                        "reading failed after {rows_read} rows ({why}); the rest of the file was not read"
                    )),
                }))
            }
        };
        let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let thread = std::thread::Builder::new()
            .name("audience-reader".into())
            .spawn(move || {
                loop {
                    let mut chunk = Vec::with_capacity(ROWS_PER_CHUNK);
                    let mut finished = false;
                    while chunk.len() < ROWS_PER_CHUNK {
                        let Some(row) = next_row() else {
                            finished = true;
                            break;
                        };
                        finished = row.is_err();
                        chunk.push(row);
                        if finished {
                            break;
                        }
                    }
                    if !chunk.is_empty() && sender.blocking_send(chunk).is_err() {
                        return; // Nobody is reading any more.
                    }
                    if finished {
                        return;
                    }
                }
            })?;
        Ok(Self {
            chunks,
            current: Vec::new().into_iter(),
            thread,
        })
    }

    /// The next row, in file order; `None` at the end of the file.
    pub(crate) async fn next_row(&mut self) -> Option<Row> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(row);
            }
            self.current = self.chunks.recv().await?.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(rows: usize) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "profile_id,phone").expect("write");
        for i in 0..rows {
            if i % 100 == 7 {
                writeln!(file, "p{i},12").expect("write");
            } else if i % 100 == 50 {
                writeln!(file, "p0,+4915112345678").expect("write");
            } else {
                writeln!(file, "p{i},+4915{:09}", 110_000_000 + i).expect("write");
            }
        }
        file.flush().expect("flush");
        file
    }

    fn describe(row: &Row) -> String {
        match row {
            Ok(AudienceRow::Profile(profile, errors)) => {
                format!("{} {} {}", profile.line, profile.profile_id, errors.len())
            }
            Ok(AudienceRow::Rejected(errors)) => format!("rejected {}", errors[0]),
            Err(err) => format!("error {err}"),
        }
    }

    /// Across several chunks, the rows come in the order and with the
    /// content the reader gives them, rows with problems and rejected rows
    /// included.
    #[tokio::test]
    async fn gives_every_row_in_file_order() {
        let file = audience(ROWS_PER_CHUNK * 3 + 17);
        let direct: Vec<String> = AudienceReader::open(file.path())
            .expect("open")
            .map(|row| describe(&row))
            .collect();
        let mut ahead =
            ReadAhead::start(AudienceReader::open(file.path()).expect("open")).expect("start");
        let mut read = Vec::new();
        while let Some(row) = ahead.next_row().await {
            read.push(describe(&row));
        }
        assert_eq!(read.len(), ROWS_PER_CHUNK * 3 + 17);
        assert_eq!(read, direct);
        // Line 9: an invalid phone number is kept, with its problem.
        assert_eq!(read[7], "9 p7 1");
        assert_eq!(read[8], "10 p8 0");
        assert!(read[50].starts_with("rejected"), "{}", read[50]);
        assert!(
            read[50].contains("duplicate profile id `p0`"),
            "{}",
            read[50]
        );
    }

    /// A reader that fails part-way ends the rows with an error naming the
    /// file, not with a silent end of file.
    #[tokio::test]
    async fn a_reader_that_fails_ends_with_an_error_not_an_early_end() {
        let file = audience(ROWS_PER_CHUNK + 10);
        let mut reader = AudienceReader::open(file.path()).expect("open");
        let mut taken = 0;
        let mut ahead = ReadAhead::start_reading(file.path().to_path_buf(), move || {
            taken += 1;
            assert!(
                taken <= ROWS_PER_CHUNK + 3,
                "a row this reader cannot handle"
            );
            reader.next_row()
        })
        .expect("start");
        let mut rows = Vec::new();
        while let Some(row) = ahead.next_row().await {
            rows.push(row);
        }
        assert_eq!(rows.len(), ROWS_PER_CHUNK + 4);
        assert!(rows[..ROWS_PER_CHUNK + 3].iter().all(Result::is_ok));
        let Some(Err(err)) = rows.last() else {
            panic!("the last row is not an error");
        };
        let message = err.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "reading failed after {} rows (a row this reader cannot handle)",
                ROWS_PER_CHUNK + 3
            )),
            "{message}"
        );
    }

    /// Dropping the rows part-way stops the reading thread instead of
    /// leaving it blocked on a full queue.
    #[tokio::test]
    async fn stops_reading_when_dropped() {
        let file = audience(ROWS_PER_CHUNK * (CHUNKS_AHEAD + 4));
        let mut ahead =
            ReadAhead::start(AudienceReader::open(file.path()).expect("open")).expect("start");
        assert!(ahead.next_row().await.is_some());
        let ReadAhead { chunks, thread, .. } = ahead;
        drop(chunks);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(thread.is_finished(), "the reading thread is still running");
    }
}
