//! Ctrl-C and SIGTERM, as one future; and, for a handler started by the host stand-in, the
//! stand-in's death.

/// Set to `true` by the host stand-in in its handler's environment: the handler then also stops
/// when the stand-in is gone, even if it was killed without the chance to stop the handler.
pub const EXIT_WITH_PARENT: &str = "ORDERGRID_EXIT_WITH_PARENT";

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what the Functions host and `kill` send).
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// [`signal`], or also [`parent_exit`] when `exit_with_parent`.
pub async fn signal_or_parent_exit(exit_with_parent: bool) {
    if exit_with_parent {
        tokio::select! {
            () = signal() => {},
            () = parent_exit() => {},
        }
    } else {
        signal().await;
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
