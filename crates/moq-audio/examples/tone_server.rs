//! A test publisher for the browser listener (web-demo/).
//!
//! Serves `web-demo/dist` and MoQ on one address (default 127.0.0.1:4443: QUIC/WebTransport on
//! UDP, HTTP + `/certificate.sha256` + WebSocket on TCP), publishes the broadcast `bot` with a
//! tone whose pitch changes each generation (10 s written at once, flushed every 3 s) and a
//! `transcript.json` track, and prints what listeners send back (playout feedback under
//! `bot/listeners/`, the `user` broadcast's microphone audio and `control.json`). Everything goes
//! through the public API (`publish_audio`, `data_track`, `listeners`, `subscribe_audio`,
//! `subscribe_data`).
//!
//! ```text
//! cargo run -p moq-audio --example tone_server -- [ADDR] [--static DIR] [--flush-every SECS]
//!     [--seconds SECS] [--generations N]
//! ```
//! Open `http://ADDR/` in Chromium and press Start. Output lines start with a keyword
//! (`listening`, `generation`, `flush`, `feedback`, `user-audio`, `control`) for scripts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use moq_audio::{
    AudioBroadcast, ConnectOptions, ConsumerOptions, Pcm, ProducerOptions, Server, ServerOptions,
    Session,
};

const RATE: u32 = 24_000;
/// One pitch per generation, cycling.
const TONES_HZ: [f32; 5] = [440.0, 660.0, 330.0, 550.0, 880.0];

struct Args {
    addr: SocketAddr,
    static_dir: PathBuf,
    flush_every: Duration,
    seconds: f32,
    generations: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        addr: "127.0.0.1:4443".parse()?,
        static_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web-demo/dist"),
        flush_every: Duration::from_secs(3),
        seconds: 10.0,
        generations: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--static" => args.static_dir = value("--static")?.into(),
            "--flush-every" => {
                args.flush_every = Duration::from_secs_f32(value("--flush-every")?.parse()?)
            }
            "--seconds" => args.seconds = value("--seconds")?.parse()?,
            "--generations" => args.generations = Some(value("--generations")?.parse()?),
            "-h" | "--help" => {
                println!("usage: tone_server [ADDR] [--static DIR] [--flush-every SECS] [--seconds SECS] [--generations N]");
                std::process::exit(0);
            }
            other if !other.starts_with('-') => {
                args.addr = other
                    .parse()
                    .with_context(|| format!("address {other:?}"))?
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

/// `secs` of a sine at `hz` with 5 ms ramps at both ends.
fn tone(hz: f32, secs: f32) -> Vec<f32> {
    let n = (RATE as f32 * secs) as usize;
    let ramp = (RATE as usize / 200).max(1);
    (0..n)
        .map(|i| {
            let edge = (i.min(n - 1 - i) as f32 / ramp as f32).min(1.0);
            0.3 * edge * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin()
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !args.static_dir.join("index.html").exists() {
        eprintln!(
            "warning: {} has no index.html (build it: cd web-demo && npm ci && npm run build)",
            args.static_dir.display()
        );
    }
    let server = Server::bind(
        args.addr,
        ServerOptions::default().with_static_dir(&args.static_dir),
    )
    .await?;
    println!(
        "listening {} fingerprint={}",
        server.url(),
        server.fingerprint()
    );

    let session = Session::connect(&server.url(), ConnectOptions::default()).await?;
    tokio::spawn(watch_user(session.clone()));
    let producer = session.publish_audio("bot", ProducerOptions::new(RATE, 1))?;
    let transcript = producer.data_track("transcript.json")?;
    tokio::spawn(watch_listeners(producer.clone()));

    let started = Instant::now();
    loop {
        let generation = producer.generation();
        let hz = TONES_HZ[generation as usize % TONES_HZ.len()];
        let text = format!(
            "Generation {generation}: a {hz} Hz tone, {} s of it queued at once.",
            args.seconds
        );
        let frame = serde_json::json!({ "generation": generation, "text": text }).to_string();
        transcript.write(frame.into_bytes())?;
        producer.write(Pcm::F32(&tone(hz, args.seconds))).await?;
        println!(
            "generation {generation} hz={hz} t={:.3}",
            started.elapsed().as_secs_f64()
        );
        if args.generations.is_some_and(|n| generation + 1 >= n) {
            // Let the last generation play out, then stop.
            producer.finish().await?;
            println!("finished t={:.3}", started.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(());
        }
        tokio::time::sleep(args.flush_every).await;
        let report = producer.flush();
        println!(
            "flush generation={} sent_ms={} dropped_ms={} heard_ms={:?} t={:.3}",
            report.generation,
            report.sent.as_millis(),
            (report.dropped_pcm + report.dropped_encoded).as_millis(),
            report.heard,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Print what each listener reports about its playout (every 20th report, plus generation
/// changes), as the producer's feedback collector sees it.
async fn watch_listeners(producer: AudioBroadcast) {
    let mut seen: std::collections::HashMap<String, (u64, Option<u64>)> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !producer.is_closed() {
        tick.tick().await;
        for l in producer.listeners() {
            let (count, last_generation) = seen.entry(l.listener.clone()).or_default();
            if l.age > Duration::from_millis(60) {
                continue; // nothing new since the last look
            }
            *count += 1;
            if *count % 20 == 1 || *last_generation != Some(l.generation) {
                println!(
                    "feedback listener={} n={count} generation={} position_ms={} playing={}",
                    l.listener,
                    l.generation,
                    l.position.as_millis(),
                    l.playing
                );
            }
            *last_generation = Some(l.generation);
        }
    }
}

/// Print what the `user` broadcast carries: microphone frames (every 50th) and control messages.
async fn watch_user(session: Session) {
    loop {
        let res: anyhow::Result<()> = async {
            let mut audio = session
                .subscribe_audio("user", ConsumerOptions::default())
                .await?;
            println!("user announced");
            let mut control = session
                .subscribe_data("user", "control.json", Duration::from_secs(10))
                .await?;
            let audio_task = tokio::spawn(async move {
                let mut frames = 0u64;
                while let Ok(Some(frame)) = audio.next().await {
                    frames += 1;
                    if frames % 50 == 1 {
                        println!(
                            "user-audio frames={frames} generation={} ts_us={} samples={}",
                            frame.generation,
                            frame.timestamp_us,
                            frame.pcm.len()
                        );
                    }
                }
            });
            while let Some(message) = control.next().await? {
                println!("control {}", String::from_utf8_lossy(&message));
            }
            audio_task.abort();
            Ok(())
        }
        .await;
        match res {
            Ok(()) => println!("user gone"),
            Err(e) => println!("user gone: {e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
