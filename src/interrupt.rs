//! SIGINT and SIGTERM during a run: the first asks the training loop (or an evaluation) to
//! stop at the end of its current step, write a checkpoint and return `Interrupted`, which
//! the command line turns into exit status 130 (SIGINT) or 143 (SIGTERM). A second signal
//! exits at once, with the same status, for a user who cannot wait for the checkpoint.
//! Work with nothing to save (kernel tuning) runs inside `at_once`: there the first signal
//! exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The signal that asked for a stop (0: none).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set by the first signal; arms the immediate exit on the second.
static ARMED: AtomicBool = AtomicBool::new(false);

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// Installs the handlers (once per process; later calls do nothing). Without them (the
/// library used from tests, or a platform without Unix signals) the default action stands.
pub fn install() -> anyhow::Result<()> {
    static DONE: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    DONE.call_once(|| result = register());
    result
}

#[cfg(unix)]
fn register() -> anyhow::Result<()> {
    use signal_hook::flag;
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the shutdown checks ARMED before this signal's own flag sets it.
        flag::register_conditional_shutdown(sig, 128 + sig, &ARMED)?;
        flag::register_usize(sig, &SIGNAL, sig as usize)?;
        flag::register(sig, &ARMED)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn register() -> anyhow::Result<()> {
    Ok(())
}

/// Runs `work` with the first signal exiting the process at once (status 128 + signal), for
/// work that has nothing to save and may sit in one long GPU submission (timing kernels on a
/// slow adapter). Without installed handlers the default action already does that.
pub fn at_once<T>(work: impl FnOnce() -> T) -> T {
    struct Disarm(bool);
    impl Drop for Disarm {
        fn drop(&mut self) {
            // Keep the arming of a signal that came before `work`; else back to a checkpoint
            // on the first signal.
            if !self.0 && requested().is_none() {
                ARMED.store(false, Ordering::SeqCst);
            }
        }
    }
    let _disarm = Disarm(ARMED.swap(true, Ordering::SeqCst));
    work()
}

/// The signal that asked for a stop, if one did.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// Asks for a stop as a signal would (tests; embedding applications).
pub fn request(signal: i32) {
    SIGNAL.store(signal as usize, Ordering::SeqCst);
}

/// A run stopped by a signal after writing its checkpoints.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    /// The step each interrupted model stopped at, and its checkpoint.
    pub checkpoints: Vec<(u64, std::path::PathBuf)>,
    /// What was being done ("training", "evaluation").
    pub during: &'static str,
}

impl Interrupted {
    /// The exit status a shell expects after this signal.
    pub fn exit_code(&self) -> i32 {
        128 + self.signal
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
        write!(f, "interrupted by {name} during {}", self.during)?;
        match self.checkpoints.as_slice() {
            [] => write!(f, "; no checkpoint was written"),
            [(step, path)] => write!(f, "; checkpoint at step {step} written to {}", path.display()),
            many => write!(f, "; {} checkpoints written (steps {}..{})", many.len(), many[0].0, many[many.len() - 1].0),
        }
    }
}

impl std::error::Error for Interrupted {}

/// `Err(Interrupted)` when a stop was asked for (for loops that have nothing to save).
pub fn check(during: &'static str) -> anyhow::Result<()> {
    match requested() {
        Some(signal) => Err(Interrupted { signal, checkpoints: Vec::new(), during }.into()),
        None => Ok(()),
    }
}
