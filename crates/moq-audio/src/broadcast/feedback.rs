//! The publisher's feedback collector: reads every listener's playout reports and feeds them to
//! the producer's marks.
//!
//! Listeners publish `<audio broadcast>/listeners/<id>` with a `playout.json` track (the wire
//! format is [`crate::wire::playout`]). The collector watches that prefix on the session, reads
//! each listener on its own task, and every [`EXPIRE_CHECK`] resolves marks that waited too long
//! without any report as unknown.

use std::collections::HashSet;
use std::time::Duration;

use crate::publish::PlayoutSink;
use crate::wire::playout::{PlayoutReport, FEEDBACK_TRACK, LISTENERS_PREFIX};
use crate::Result;

/// How often pending marks are checked against the mark timeout.
const EXPIRE_CHECK: Duration = Duration::from_millis(250);

/// Collect the playout reports of every listener under `<path>/listeners/` for `sink` until the
/// producer closes. Listeners may come and go; each is read on its own task.
pub(crate) async fn collect(remote: moq_net::origin::Consumer, path: String, sink: PlayoutSink) {
    let mut patterns = moq_net::Patterns::new();
    patterns.insert(moq_net::Pattern::all());
    let scoped = match remote.scope(format!("{path}/{LISTENERS_PREFIX}"), &patterns) {
        Ok(scoped) => scoped,
        Err(e) => {
            tracing::warn!(%e, "cannot watch for listeners; marks will resolve as unknown");
            return;
        }
    };
    let mut announced = scoped.announced();
    let mut seen = HashSet::new();
    let mut readers = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(EXPIRE_CHECK);
    loop {
        tokio::select! {
            update = announced.next() => {
                let Some(update) = update else { break };
                let id = update.prefix.to_string();
                if update.kind.is_active() && seen.insert(id.clone()) {
                    readers.spawn(read_listener(scoped.clone(), id, sink.clone()));
                }
            }
            Some(done) = readers.join_next() => {
                if let Ok(id) = done {
                    seen.remove(&id); // it may come back
                }
            }
            _ = tick.tick() => {
                sink.expire_marks();
                // After finish/cancel, keep listening until the last marks resolved.
                if sink.is_done() {
                    break;
                }
            }
        }
    }
}

/// Read one listener's reports until its broadcast ends; returns its id.
///
/// A subscription that fails while the listener is still there (a report group reset or
/// skipped in transit) is renewed: losing a listener's feedback would make its marks time out.
async fn read_listener(scoped: moq_net::origin::Consumer, id: String, sink: PlayoutSink) -> String {
    let broadcast = match scoped.routed_broadcast(id.as_str()).await {
        Ok(broadcast) => broadcast,
        Err(e) => {
            tracing::debug!(%e, listener = %id, "listener broadcast gone");
            return id;
        }
    };
    while !broadcast.is_closed() && !sink.is_done() {
        if let Err(e) = read_reports(&broadcast, &id, &sink).await {
            tracing::debug!(%e, listener = %id, "listener feedback interrupted; resubscribing");
        }
        tokio::time::sleep(RESUBSCRIBE).await;
    }
    id
}

/// Pause before renewing a listener's feedback subscription.
const RESUBSCRIBE: Duration = Duration::from_millis(50);

async fn read_reports(
    broadcast: &moq_net::broadcast::Consumer,
    id: &str,
    sink: &PlayoutSink,
) -> Result<()> {
    // Reports are tiny and each is its own group; tolerate reordering so a report still in
    // flight is not abandoned when the next one starts.
    let subscription = moq_net::track::Subscription::default().with_max_age(Duration::from_secs(1));
    let mut track = broadcast
        .track(FEEDBACK_TRACK)?
        .subscribe(subscription)
        .await?;
    while let Some(mut group) = track.recv_group().await? {
        while let Some(frame) = group.read_frame().await? {
            match PlayoutReport::decode(id, &frame.payload) {
                Ok(report) => sink.report(report),
                Err(e) => tracing::debug!(%e, listener = %id, "ignoring a bad playout report"),
            }
        }
    }
    Ok(())
}
