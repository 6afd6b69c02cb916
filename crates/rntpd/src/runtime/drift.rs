//! The drift file: the frequency written off the loop while running, and once more at exit.

use super::*;

impl Driver {
    /// Writes the drift file off the event loop (the write fsyncs twice).
    pub(super) fn save_drift(&self, freq_ppm: f64) {
        let Some(path) = self.driftfile.clone() else { return };
        if self.drift_busy.replace(true) {
            return;
        }
        let busy = Rc::clone(&self.drift_busy);
        let failures = Rc::clone(&self.drift_failures);
        tokio::task::spawn_local(async move {
            let shown = path.clone();
            let written =
                tokio::task::spawn_blocking(move || crate::drift::write(&path, freq_ppm)).await;
            busy.set(false);
            let error = match written {
                Ok(Ok(())) => {
                    if failures.replace(0) > 0 {
                        tracing::info!(path = %shown.display(), "drift file written again");
                    }
                    tracing::debug!(path = %shown.display(), freq_ppm, "drift file saved");
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            // The node asks again in an hour; say it once, not every hour.
            let n = failures.get().saturating_add(1);
            failures.set(n);
            if n == 1 {
                tracing::warn!(
                    path = %shown.display(), error = %error,
                    "cannot write the drift file; retrying hourly (the frequency is kept in memory)"
                );
            } else {
                tracing::debug!(path = %shown.display(), error = %error, failures = n, "drift file still not writable");
            }
        });
    }

    /// At exit: the last frequency, written before the process ends.
    pub(super) fn save_drift_now(&self) {
        let (Some(path), Some(freq)) = (&self.driftfile, self.shared.with(|n| n.drift_to_save()))
        else {
            return;
        };
        if let Err(e) = crate::drift::write(path, freq) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the drift file");
        }
    }
}
