//! Ctrl-C and SIGTERM, as one future; and, for a handler started by the host stand-in, the
//! stand-in's death.

/// Set to `true` by the host stand-in in its handler's environment: the handler then also stops
/// when the stand-in is gone, even if it was killed without the chance to stop the handler.
pub const EXIT_WITH_PARENT: &str = "ORDERGRID_EXIT_WITH_PARENT";

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what the Functions host and `kill` send).
///
/// The handlers are installed by this call, not when the future is first polled: call it before
/// saying you are ready (logging the port, printing the banner), so a signal sent as soon as
/// you are seen stops you cleanly instead of killing the process. Must run inside the runtime.
pub fn signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let recv = |installed: Option<tokio::signal::unix::Signal>| async move {
                match installed {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = recv(interrupt) => {},
                () = recv(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// [`signal`], or also [`parent_exit`] when `exit_with_parent`; installed by this call too.
pub fn signal_or_parent_exit(
    exit_with_parent: bool,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let signal = signal();
    async move {
        if exit_with_parent {
            tokio::select! {
                () = signal => {},
                () = parent_exit() => {},
            }
        } else {
            signal.await;
        }
    }
}

/// Resolves when the process that started this one has gone (this process was re-parented).
/// The host stand-in asks its handler to watch for this, so a handler never outlives a host
/// that was killed without the chance to stop it.
pub async fn parent_exit() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if std::os::unix::process::parent_id() != parent {
                tracing::warn!(
                    parent,
                    "the process that started the handler is gone; stopping"
                );
                return;
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}
