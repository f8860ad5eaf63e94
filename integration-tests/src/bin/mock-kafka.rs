//! A Kafka-protocol broker on loopback for tests: librdkafka's mock cluster
//! in a process of its own, with the suite's topics created.
//!
//! Prints `bootstrap=HOST:PORT` on its first line, then obeys commands on
//! standard input, one per line: `down` (the broker drops every connection
//! and refuses new ones), `up`, `exit`. It exits when standard input closes,
//! so it never outlives the test that started it.

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;

fn main() -> std::process::ExitCode {
    match serve() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-kafka: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), String> {
    let cluster = MockCluster::new(1).map_err(|e| format!("cannot start the mock cluster: {e}"))?;
    let mut topics: Vec<String> = spid_types::topics::ALL.iter().map(|t| (*t).to_owned()).collect();
    topics.extend(spid_types::topics::ALL.iter().map(|t| format!("{t}{}", spid_types::topics::DEAD_LETTER_SUFFIX)));
    for topic in &topics {
        cluster
            .create_topic(topic, spid_events::PARTITIONS, 1)
            .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
    }
    let mut out = std::io::stdout();
    writeln!(out, "bootstrap={}", cluster.bootstrap_servers()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        match line.trim() {
            "down" => cluster.broker_down(1).map_err(|e| e.to_string())?,
            "up" => cluster.broker_up(1).map_err(|e| e.to_string())?,
            "exit" => break,
            "" => continue,
            other => eprintln!("mock-kafka: unknown command {other:?}"),
        }
        writeln!(out, "ok {}", line.trim()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
