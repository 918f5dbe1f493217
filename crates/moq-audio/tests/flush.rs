//! End to end over real QUIC on loopback: write faster than real time, flush mid-utterance,
//! write again; check what the consumer and the player got.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use moq_audio::{
    AudioBroadcast, AudioConsumer, ConnectOptions, ConsumerOptions, Pcm, Player, PlayerOptions,
    ProducerOptions, Server, ServerOptions, Session, WriteOutcome,
};

const RATE: u32 = 24_000;

fn tone(hz: f32, secs: f32) -> Vec<f32> {
    let n = (RATE as f32 * secs) as usize;
    (0..n)
        .map(|i| 0.4 * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin())
        .collect()
}

async fn setup() -> (Server, Session, Session) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(addr, ServerOptions::default()).await.unwrap();
    let a = Session::connect(&server.url(), ConnectOptions::default())
        .await
        .unwrap();
    let b = Session::connect(&server.url(), ConnectOptions::default())
        .await
        .unwrap();
    (server, a, b)
}

/// `publisher` publishes broadcast "bot" (mono, [`RATE`]) and `listener` subscribes to it.
async fn bot(publisher: &Session, listener: &Session) -> (AudioBroadcast, AudioConsumer) {
    let producer = publisher
        .publish_audio("bot", ProducerOptions::new(RATE, 1))
        .unwrap();
    let consumer = listener
        .subscribe_audio("bot", ConsumerOptions::default())
        .await
        .unwrap();
    (producer, consumer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_cuts_the_old_generation_and_the_new_one_plays_at_once() {
    let (server, publisher, listener) = setup().await;
    let (producer, consumer) = bot(&publisher, &listener).await;

    // 5 s of speech-like audio at once: it waits in the producer's queue, not on the network.
    assert_eq!(
        producer.write(Pcm::F32(&tone(440.0, 5.0))).await.unwrap(),
        WriteOutcome::Queued
    );
    assert!(
        producer.queued() > Duration::from_millis(4_500),
        "{:?}",
        producer.queued()
    );

    let mut consumer = consumer;
    // Wait until a second of generation 0 has arrived, then flush.
    let mut received_us = 0;
    while received_us < 1_000_000 {
        let frame = consumer.next().await.unwrap().unwrap();
        assert_eq!(frame.generation, 0);
        received_us += frame.duration_us();
    }
    let report = producer.flush();
    let flushed_at = Instant::now();
    assert_eq!(report.generation, 1);
    assert_eq!(producer.generation(), 1);
    let dropped = report.dropped_pcm + report.dropped_encoded;
    let accounted = dropped + report.sent;
    assert!(
        accounted.as_millis().abs_diff(5_000) <= 40,
        "dropped {dropped:?} + sent {:?} should be the 5 s written",
        report.sent
    );
    assert!(
        report.sent >= Duration::from_millis(1_000) && report.sent <= Duration::from_millis(1_200)
    );

    producer.write(Pcm::F32(&tone(880.0, 1.0))).await.unwrap();

    // After the flush: at most the lead of old audio, then only generation 1.
    let mut old_after_flush_us = 0;
    let mut first_new = None;
    let mut new_us = 0;
    while new_us < 900_000 {
        let frame = consumer.next().await.unwrap().unwrap();
        match frame.generation {
            0 => {
                assert!(first_new.is_none(), "old generation after a new one");
                old_after_flush_us += frame.duration_us();
            }
            1 => {
                first_new.get_or_insert_with(|| flushed_at.elapsed());
                new_us += frame.duration_us();
            }
            g => panic!("unexpected generation {g}"),
        }
    }
    let lead_us = producer.options().lead.as_micros() as u64;
    assert!(
        old_after_flush_us <= lead_us + 20_000,
        "{old_after_flush_us} µs of old audio after flush"
    );
    let first_new = first_new.unwrap();
    assert!(
        first_new < Duration::from_millis(100),
        "new generation took {first_new:?}"
    );

    producer.finish().await.unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_renders_at_most_the_fade_of_old_audio_after_the_new_generation_arrives() {
    let (server, publisher, listener) = setup().await;
    let (producer, consumer) = bot(&publisher, &listener).await;
    let dir = std::env::temp_dir().join(format!("moq-audio-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("heard.wav");
    let mut options = PlayerOptions::default();
    options.wav_path = Some(wav.clone());
    let mut player = Player::start(consumer, options, None).unwrap();

    producer.write(Pcm::F32(&tone(440.0, 3.0))).await.unwrap();
    // Flush once the listener has rendered 1 s of generation 0.
    player
        .wait_until(|r| r.frames_of(Some(0), 0, None) >= RATE as u64)
        .await;
    producer.flush();
    producer.write(Pcm::F32(&tone(880.0, 1.0))).await.unwrap();
    producer.finish().await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), player.wait())
        .await
        .unwrap()
        .unwrap();

    let arrival = report.arrival_of(1).expect("generation 1 arrived");
    let old_after = report.frames_of(Some(0), arrival, None);
    let fade = RATE as u64 * 5 / 1000;
    let quantum = RATE as u64 * 10 / 1000;
    assert!(
        old_after <= fade + quantum,
        "{old_after} frames of old audio after the new generation arrived"
    );
    let new = report.frames_of(Some(1), 0, None);
    assert!(
        new >= RATE as u64 * 95 / 100,
        "only {new} frames of the new generation rendered"
    );
    // The WAV file is the render clock.
    let reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.len() as u64, report.rendered_frames);
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);
}

/// A WAV file that cannot be written (a full disk: /dev/full) ends the player with an I/O error
/// naming the file, instead of a player that seems to play; the write is off the render path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_file_that_cannot_be_written_ends_the_player_with_the_io_error() {
    let (server, publisher, listener) = setup().await;
    let (producer, consumer) = bot(&publisher, &listener).await;
    let mut options = PlayerOptions::default();
    options.wav_path = Some("/dev/full".into());
    let mut player = Player::start(consumer, options, None).unwrap();
    producer.write(Pcm::F32(&tone(440.0, 3.0))).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), player.wait())
        .await
        .expect("the player ended")
        .expect_err("writing to /dev/full fails");
    assert!(
        matches!(err, moq_audio::Error::Io(_)) && err.to_string().contains("/dev/full"),
        "{err}"
    );
    drop(server);
}

/// The end of an utterance that is not a whole number of Opus frames (and sits in the
/// resampler's filter delay at 22.05 kHz) still goes out when the writer pauses, so a mark at
/// the end of it resolves as played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_at_the_end_of_an_odd_length_utterance_resolves_played() {
    let (server, publisher, listener) = setup().await;
    let producer = publisher
        .publish_audio("bot", ProducerOptions::new(22_050, 1))
        .unwrap();
    let (player, id) = listener
        .play_audio(
            "bot",
            ConsumerOptions::default(),
            PlayerOptions::default(),
            Some("ear".into()),
        )
        .await
        .unwrap();
    let n = 22_050 * 4_541 / 1_000; // 4.541 s: the last 1 ms of a frame, and the filter's tail
    let pcm: Vec<f32> = (0..n).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    producer.write(Pcm::F32(&pcm)).await.unwrap();
    producer.mark("end").unwrap();
    let event = tokio::time::timeout(Duration::from_secs(15), producer.wait_mark("end"))
        .await
        .expect("the mark resolved")
        .unwrap();
    assert!(
        matches!(&event.state, moq_audio::MarkState::Played { listener, .. } if *listener == id),
        "{event:?}"
    );
    drop(player);
    drop(server);
}

/// The wire shape of a flush, read as a stock player reads it (raw MoQ groups, LOC frames): the
/// old generation's open group ends, and the marker opens the next group — sequence + 1 — with
/// the new generation's audio following in that same group, 2.5 ms after the marker. A marker
/// in a group of its own could reach a stock player after the newer audio group (moq-lite sends
/// the newest group first), and `@moq/watch` then skipped the new reply's first 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_marker_opens_the_group_that_carries_the_new_audio() {
    use moq_audio::wire::loc::{Event, Frame};
    use moq_net::track::Subscription;

    const T: Duration = Duration::from_secs(10);
    let (server, publisher, listener) = setup().await;
    let producer = publisher
        .publish_audio("bot", ProducerOptions::new(RATE, 1))
        .unwrap();
    let broadcast = listener.consume_broadcast("bot", T).await.unwrap();
    let keep_all = Subscription::default().with_max_age(Duration::from_secs(60));
    let mut track = tokio::time::timeout(T, broadcast.track("audio").unwrap().subscribe(keep_all))
        .await
        .unwrap()
        .unwrap();
    producer.write(Pcm::F32(&tone(440.0, 5.0))).await.unwrap();

    // Read whole groups in order: (sequence, frames). Flush once generation 0 has played 300 ms.
    let mut groups: Vec<(u64, Vec<Frame>)> = Vec::new();
    let mut flushed = false;
    let mut new_audio = 0;
    while new_audio < 5 {
        let mut group = tokio::time::timeout(T, track.recv_group())
            .await
            .expect("recv_group timed out")
            .expect("recv_group")
            .expect("the track ended");
        let sequence = group.sequence;
        let mut frames = Vec::new();
        while frames.len() < 6 {
            let read = tokio::time::timeout(T, group.read_frame()).await;
            let Some(frame) = read.expect("read timed out").expect("read frame") else {
                break;
            };
            frames.push(Frame::decode(frame.payload).unwrap());
            if !flushed && frames.len() == 3 && groups.len() == 2 {
                // Mid-group: the open group must end where the old audio ends.
                assert_eq!(producer.flush().generation, 1);
                flushed = true;
                producer.write(Pcm::F32(&tone(880.0, 1.0))).await.unwrap();
            }
        }
        new_audio += frames
            .iter()
            .filter(|f| f.generation == 1 && f.event.is_none())
            .count();
        groups.push((sequence, frames));
    }

    let first_new = groups
        .iter()
        .position(|(_, frames)| frames.iter().any(|f| f.generation == 1))
        .expect("no group of generation 1");
    let (sequence, frames) = &groups[first_new];
    let (previous, old) = &groups[first_new - 1];
    assert_eq!(*sequence, previous + 1, "group sequences stay contiguous");
    assert!(old.iter().all(|f| f.generation == 0 && f.event.is_none()));
    let marker = &frames[0];
    assert_eq!((marker.generation, marker.event), (1, Some(Event::Flush)));
    assert_eq!(
        marker.timestamp_us,
        old.last().unwrap().timestamp_us + 20_000,
        "the marker sits where the old audio ends"
    );
    assert!(
        frames.len() == 6
            && frames[1..]
                .iter()
                .all(|f| f.generation == 1 && f.event.is_none()),
        "the new audio follows the marker in its group: {:?}",
        frames
            .iter()
            .map(|f| (f.generation, f.event))
            .collect::<Vec<_>>()
    );
    assert_eq!(frames[1].timestamp_us, marker.timestamp_us + 2_500);

    producer.cancel();
    drop(server);
}
