//! Gathering a bulk subscription's queued messages into batches, as upstream's default
//! bulk subscriber does: a batch starts with the first message that arrives and takes
//! whatever is already queued; it is settled once it holds the most messages allowed,
//! once the longest wait has passed since its first message (right away for immediate
//! flushing), or once the subscription stops. Batches are settled one after another;
//! messages arriving meanwhile wait for the next batch. After the stop, arriving
//! messages are refused without delivery.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{BatchSettings, Delivery, Pending, batch, stopping};

/// Runs the batcher until the queue closes (the handler was dropped).
pub(super) async fn run(
    delivery: Arc<Delivery>,
    settings: BatchSettings,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let mut stop = delivery.stop_signal.clone();
    let mut stopped = false;
    loop {
        let first = if stopped {
            queue.recv().await
        } else {
            tokio::select! {
                biased;
                first = queue.recv() => first,
                () = stop_requested(&mut stop) => {
                    stopped = true;
                    continue;
                }
            }
        };
        let Some(first) = first else {
            return;
        };
        if stopped {
            let _ = first.verdict.send(Err(stopping()));
            continue;
        }
        let mut gathered = vec![first];
        drain(&mut queue, &mut gathered, settings.max_messages);
        let deadline = Instant::now() + settings.max_await;
        let mut closed = false;
        while !settings.immediate && gathered.len() < settings.max_messages {
            tokio::select! {
                biased;
                () = stop_requested(&mut stop) => {
                    stopped = true;
                    // What was queued before the stop belongs to the last batch.
                    drain(&mut queue, &mut gathered, usize::MAX);
                    break;
                }
                next = queue.recv() => match next {
                    Some(next) => {
                        gathered.push(next);
                        drain(&mut queue, &mut gathered, settings.max_messages);
                    }
                    None => {
                        closed = true;
                        break;
                    }
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        while !gathered.is_empty() {
            let rest = gathered.split_off(gathered.len().min(settings.max_messages));
            batch::settle(&delivery, std::mem::replace(&mut gathered, rest)).await;
        }
        if closed {
            return;
        }
    }
}

/// Moves already queued messages into `gathered` until it holds `limit`.
fn drain(queue: &mut mpsc::UnboundedReceiver<Pending>, gathered: &mut Vec<Pending>, limit: usize) {
    while gathered.len() < limit {
        match queue.try_recv() {
            Ok(next) => gathered.push(next),
            Err(_) => return,
        }
    }
}

/// Resolves once the subscription stops (or its stop signal is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
