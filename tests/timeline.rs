//! The timeline of a multi-rank run: valid Chrome trace JSON with every
//! rank a process, its worker and actor threads as threads, and the tasks,
//! actor calls and transfers that ran.

use ferry::{Config, Error};
use serde_json::Value;

#[ferry::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[ferry::remote]
fn big(n: u64) -> Vec<u8> {
    vec![7u8; n as usize]
}

#[ferry::actor]
struct Counter {
    n: u64,
}

#[ferry::actor]
impl Counter {
    fn new() -> Self {
        Counter { n: 0 }
    }

    fn increment(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

fn trace_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ferry-timeline-{tag}-{}.json", std::process::id()))
}

#[test]
fn a_two_rank_timeline_is_chrome_trace_json_with_every_rank() -> ferry::Result<()> {
    let path = trace_path("two");
    let cfg = Config::default()
        .num_cpus(2.0)
        .object_store_memory(64 << 20)
        .timeline(true)
        .force_rma(true);
    ferry::loopback::run(2, cfg, |rt, _| {
        for rank in [0, 1] {
            let refs = (0..5)
                .map(|i| square::options().on_rank(rank).remote(&rt, i))
                .collect::<ferry::Result<Vec<_>>>()?;
            rt.get_all(&refs)?;
        }
        let c = Counter::options().on_rank(1).remote(&rt)?;
        for _ in 0..3 {
            rt.get(&c.increment().remote()?)?;
        }
        // A result larger than a message: read from rank 1's store.
        let b = big::options().on_rank(1).remote(&rt, 1 << 20)?;
        assert_eq!(rt.get(&b)?.len(), 1 << 20);
        rt.timeline(&path)
    })??;
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Init(e.to_string()))?;
    std::fs::remove_file(&path).ok();
    let json: Value = serde_json::from_str(&text).expect("the timeline is JSON");
    let events = json["traceEvents"].as_array().expect("a traceEvents array");
    let spans: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    for e in &spans {
        assert!(
            e["ts"].as_u64().is_some() && e["dur"].as_u64().unwrap() >= 1,
            "{e}"
        );
        assert!(e["pid"].as_u64().unwrap() < 2, "{e}");
        assert!(e["tid"].as_u64().is_some(), "{e}");
    }
    let named = |name: &str, pid: u64| {
        spans
            .iter()
            .filter(|e| e["pid"] == pid && e["name"].as_str().is_some_and(|n| n.contains(name)))
            .count()
    };
    assert_eq!(named("square", 0), 5, "{text}");
    assert_eq!(named("square", 1), 5, "{text}");
    assert_eq!(named("Counter.increment", 1), 3, "{text}");
    let transfers: Vec<_> = spans.iter().filter(|e| e["cat"] == "transfer").collect();
    assert!(
        transfers
            .iter()
            .any(|e| e["pid"] == 0 && e["args"]["bytes"].as_u64() >= Some(1 << 20)),
        "{text}"
    );
    for rank in [0, 1] {
        assert!(
            events.iter().any(|e| e["name"] == "process_name"
                && e["pid"] == rank
                && e["args"]["name"] == format!("rank {rank}")),
            "{text}"
        );
    }
    // Every span's thread is named.
    for e in &spans {
        assert!(
            events.iter().any(|m| m["name"] == "thread_name"
                && m["pid"] == e["pid"]
                && m["tid"] == e["tid"]),
            "no thread_name for {e}"
        );
    }
    assert!(
        events.iter().any(|m| m["name"] == "thread_name"
            && m["args"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("ferry-r1-w"))),
        "{text}"
    );
    Ok(())
}

#[test]
fn without_recording_the_timeline_says_how_to_turn_it_on() -> ferry::Result<()> {
    let rt = ferry::init(
        Config::default()
            .num_cpus(1.0)
            .object_store_memory(16 << 20),
    )?;
    match rt.timeline(trace_path("off")) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("FERRY_TIMELINE=1"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    rt.shutdown()
}
