//! A test publisher for the browser listener (web-demo/).
//!
//! Serves `web-demo/dist` and MoQ on one address (default 127.0.0.1:4443: QUIC/WebTransport on
//! UDP, HTTP + `/certificate.sha256` + WebSocket on TCP), publishes the broadcast `bot` with a
//! tone whose pitch changes each generation (10 s written at once, flushed every 3 s) and a
//! `transcript.json` track, and prints what listeners send back (playout feedback under
//! `bot/listeners/`, the `user` broadcast's microphone audio and `control.json`).
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
use moq_audio::catalog::{self, AUDIO_TRACK, CATALOG_TRACK};
use moq_audio::feedback::{PlayoutReport, FEEDBACK_TRACK, LISTENERS_PREFIX};
use moq_audio::{AudioProducer, ConnectOptions, Pcm, ProducerOptions, Server, ServerOptions, Session};
use moq_net::{announce, origin};

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
            "--flush-every" => args.flush_every = Duration::from_secs_f32(value("--flush-every")?.parse()?),
            "--seconds" => args.seconds = value("--seconds")?.parse()?,
            "--generations" => args.generations = Some(value("--generations")?.parse()?),
            "-h" | "--help" => {
                println!("usage: tone_server [ADDR] [--static DIR] [--flush-every SECS] [--seconds SECS] [--generations N]");
                std::process::exit(0);
            }
            other if !other.starts_with('-') => args.addr = other.parse().with_context(|| format!("address {other:?}"))?,
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
    let server = Server::bind(args.addr, ServerOptions::default().with_static_dir(&args.static_dir)).await?;
    println!("listening {} fingerprint={}", server.url(), server.fingerprint());

    tokio::spawn(watch_user(server.origin()));

    let session = Session::connect(&server.url(), ConnectOptions::default()).await?;
    // Published by hand rather than with `publish_audio` so the broadcast can also carry a
    // transcript track.
    let broadcast = session.publish_broadcast("bot")?;
    let options = ProducerOptions::new(RATE, 1);
    let cat = catalog::build(RATE, 1, options.bitrate, options.frame_duration.as_ms(), options.lead.as_millis() as u32);
    let mut catalog_track = broadcast.create_track(CATALOG_TRACK, hang::Catalog::default_track_info())?;
    let json = cat.to_json()?;
    println!("catalog {json}");
    catalog_track.write_frame(moq_net::Timestamp::now(), json.into_bytes())?;
    let track = broadcast.create_track(AUDIO_TRACK, hang::container::track_info(hang::catalog::PRIORITY.audio))?;
    let mut transcript = broadcast.create_track("transcript.json", moq_net::track::Info::default())?;
    let producer = AudioProducer::new(track, options)?;
    producer.attach(Box::new((broadcast, catalog_track)));
    tokio::spawn(watch_listeners(server.origin(), producer.clone()));

    let started = Instant::now();
    loop {
        let generation = producer.generation();
        let hz = TONES_HZ[generation as usize % TONES_HZ.len()];
        let text = format!("Generation {generation}: a {hz} Hz tone, {} s of it queued at once.", args.seconds);
        let frame = serde_json::json!({ "generation": generation, "text": text }).to_string();
        transcript.write_frame(moq_net::Timestamp::now(), frame.into_bytes())?;
        producer.write(Pcm::F32(&tone(hz, args.seconds))).await?;
        println!("generation {generation} hz={hz} t={:.3}", started.elapsed().as_secs_f64());
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

/// Print the playout reports of every listener under `bot/listeners/` (every 20th, plus changes)
/// and feed them to the producer, so its flush reports say how far the browser got.
async fn watch_listeners(origin: origin::Producer, producer: AudioProducer) {
    let consumer = origin.consume();
    let mut announced = consumer.announced();
    let prefix = format!("bot/{LISTENERS_PREFIX}/");
    while let Some(update) = announced.next().await {
        let path = update.prefix.as_str().to_string();
        if update.kind != announce::Kind::Announced || !path.starts_with(&prefix) {
            continue;
        }
        let id = path[prefix.len()..].to_string();
        println!("listener {id} announced");
        let consumer = consumer.clone();
        let producer = producer.clone();
        tokio::spawn(async move {
            let res: anyhow::Result<()> = async {
                let broadcast = consumer.routed_broadcast(path.as_str()).await?;
                let mut track = broadcast.track(FEEDBACK_TRACK)?.subscribe(None).await?;
                let (mut count, mut last_generation) = (0u64, None);
                while let Some(mut group) = track.recv_group().await? {
                    while let Some(frame) = group.read_frame().await? {
                        let report = PlayoutReport::decode(&id, &frame.payload)?;
                        count += 1;
                        if count % 20 == 1 || last_generation != Some(report.generation) {
                            println!(
                                "feedback listener={id} n={count} generation={} ts_us={} playing={}",
                                report.generation, report.ts_us, report.playing
                            );
                        }
                        last_generation = Some(report.generation);
                        producer.report_playout(report);
                    }
                }
                Ok(())
            }
            .await;
            match res {
                Ok(()) => println!("listener {id} gone"),
                Err(e) => println!("listener {id} gone: {e:#}"),
            }
        });
    }
}

/// Print what the `user` broadcast carries: microphone frames (every 50th) and control messages.
async fn watch_user(origin: origin::Producer) {
    let consumer = origin.consume();
    loop {
        let res: anyhow::Result<()> = async {
            let broadcast = consumer.routed_broadcast("user").await?;
            println!("user announced");
            let mut control = broadcast.track("control.json")?.subscribe(None).await?;
            let mut audio = broadcast.track(AUDIO_TRACK)?.subscribe(None).await?;
            let audio_task = tokio::spawn(async move {
                let mut frames = 0u64;
                while let Ok(Some(mut group)) = audio.recv_group().await {
                    let sequence = group.sequence;
                    while let Ok(Some(frame)) = group.read_frame().await {
                        frames += 1;
                        if frames % 50 == 1 {
                            let ts = hang::container::Frame::decode(frame.payload.clone())
                                .map(|f| f.timestamp.as_micros())
                                .unwrap_or_default();
                            println!(
                                "user-audio frames={frames} group={sequence} ts_us={ts} bytes={}",
                                frame.payload.len()
                            );
                        }
                    }
                }
            });
            while let Some(mut group) = control.recv_group().await? {
                while let Some(frame) = group.read_frame().await? {
                    println!("control {}", String::from_utf8_lossy(&frame.payload));
                }
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
