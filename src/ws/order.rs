//! The order of one connection's sends. Each send gets a ticket when its frame is read, in
//! frame order; it does its checks and queues itself for storage only in its turn, once every
//! earlier send of the connection has done so (or has been refused). A user's messages keep
//! the order they were typed in, and anti-spam sees them in that order, while their storage
//! overlaps.

use std::sync::Arc;

use tokio::sync::watch;

/// Hands out the tickets of one connection.
pub(crate) struct Order {
    /// The ticket whose turn it is.
    turn: Arc<watch::Sender<u64>>,
    next: u64,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            turn: Arc::new(watch::Sender::new(0)),
            next: 0,
        }
    }
}

impl Order {
    pub(crate) fn ticket(&mut self) -> Ticket {
        let ticket = Ticket {
            turn: self.turn.clone(),
            number: self.next,
        };
        self.next += 1;
        ticket
    }
}

/// One send's place in its connection's order. Dropping it (after [`Ticket::wait`]) lets the
/// next send go.
pub(crate) struct Ticket {
    turn: Arc<watch::Sender<u64>>,
    number: u64,
}

impl Ticket {
    /// Waits until every earlier ticket has been dropped.
    pub(crate) async fn wait(&self) {
        let mut turn = self.turn.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = turn.wait_for(|now| *now >= self.number).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let next = self.number + 1;
        self.turn.send_if_modified(|now| {
            let behind = *now < next;
            if behind {
                *now = next;
            }
            behind
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn tickets_take_turns_in_the_order_they_were_handed_out() {
        let mut order = Order::default();
        let (first, second, third) = (order.ticket(), order.ticket(), order.ticket());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let run = |ticket: Ticket, name: &'static str| {
            let log = log.clone();
            tokio::spawn(async move {
                ticket.wait().await;
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(ticket);
            })
        };
        // Started in reverse: the turns still go first, second, third.
        let tasks = [
            run(third, "third"),
            run(second, "second"),
            run(first, "first"),
        ];
        for task in tasks {
            assert!(task.await.is_ok());
        }
        let log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(*log, ["first", "second", "third"]);
    }

    #[tokio::test]
    async fn a_later_ticket_waits_for_an_earlier_one() {
        let mut order = Order::default();
        let (first, second) = (order.ticket(), order.ticket());
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.wait()).await;
        assert!(
            waiting.is_err(),
            "the second ticket went before the first was done"
        );
        drop(first);
        let waited = tokio::time::timeout(Duration::from_secs(1), second.wait()).await;
        assert!(waited.is_ok());
    }
}
