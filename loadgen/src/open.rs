//! Opening many connections with bounded concurrency.

use std::cell::Cell;
use std::future::Future;

use futures_util::StreamExt;

use crate::BenchError;

/// Runs `open(i)` for `i` in `0..count`, at most `concurrency` at a time,
/// counting successes in `opened`. Stops at the first failure and returns
/// what was opened so far together with that failure.
pub async fn open_many<T, F, Fut>(
    count: usize,
    concurrency: usize,
    opened: &Cell<u64>,
    open: F,
) -> (Vec<T>, Option<BenchError>)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, BenchError>>,
{
    let mut results = futures_util::stream::iter(0..count)
        .map(open)
        .buffer_unordered(concurrency.max(1));
    let mut connections = Vec::with_capacity(count);
    while let Some(result) = results.next().await {
        match result {
            Ok(connection) => {
                connections.push(connection);
                opened.set(opened.get() + 1);
            }
            Err(error) => return (connections, Some(error)),
        }
    }
    (connections, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_all_or_stops_at_the_first_failure() {
        let opened = Cell::new(0);
        let (all, error) = open_many(10, 3, &opened, |i| async move { Ok(i) }).await;
        assert!(error.is_none());
        let mut all = all;
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(opened.get(), 10);

        let opened = Cell::new(0);
        let (some, error) = open_many(10, 1, &opened, |i| async move {
            if i == 4 {
                Err(BenchError::target("t", "refused"))
            } else {
                Ok(i)
            }
        })
        .await;
        assert_eq!(some, vec![0, 1, 2, 3]);
        assert_eq!(opened.get(), 4);
        assert!(error.expect("the failure").to_string().contains("refused"));
    }
}
