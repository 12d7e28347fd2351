//! `alertd run`: sets up logging, the store and the signals, then runs the
//! service from the library until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use alertd::clock::SystemClock;
use alertd::config::Backend;
use alertd::http::serve::Limits;
use alertd::service::{self, DataDirLock, Options, Service};
use alertd::store::{self, Access};

use crate::{IO_FAILURE, load};

pub struct RunArgs {
    pub config: PathBuf,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub host_name: Option<String>,
    pub json_logs: bool,
}

/// Logs to standard error; `ALERTD_LOG` (such as `debug` or
/// `info,alertd=debug`) sets the levels.
fn init_logging(json: bool) {
    let filter = std::env::var("ALERTD_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        tracing_subscriber::registry()
            .with(layer.json().with_filter(filter))
            .init();
    } else {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init();
    }
}

pub fn run(args: RunArgs) -> ExitCode {
    init_logging(args.json_logs);
    let loaded = match load(&args.config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config;
    let token = std::env::var("ALERTD_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
        .or_else(|| config.server.token.clone());
    let host_name = args
        .host_name
        .or_else(|| config.server.host_name.clone())
        .or_else(sysinfo::System::host_name)
        .unwrap_or_else(|| "localhost".to_string());
    let data_dir = service::data_dir(args.data_dir.as_deref(), &config, &args.config);
    let listen = args.listen.unwrap_or_else(|| config.server.listen.clone());
    let idle_timeout = u64::try_from(config.server.idle_timeout).unwrap_or(30_000);
    let open_files = raise_open_files_limit();
    // A file that may not grow further (RLIMIT_FSIZE) makes the write fail,
    // like a full disk, instead of killing the process: the store reports
    // it, refuses what it cannot keep, and goes on when it can.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" is always sound.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let public_url = config.server.public_url.clone();
    let server = config.server.clone();
    if !config.alerting.enabled {
        warn!("alerting.enabled is false: rules are not evaluated");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "cannot start the runtime");
            return ExitCode::from(IO_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        // In this order, so that a port in use or a second instance leaves
        // nothing behind: the socket, the data directory's lock, the store.
        let listener = service::bind(&listen).await?;
        let lock = DataDirLock::acquire(&data_dir)?;
        // Hooks stay in each node's data directory, whatever the backend.
        if let Backend::Redis { cluster, .. } = &config.storage.backend {
            info!(cluster, "state shared through Redis");
        }
        let store = store::open(&config.storage.backend, &data_dir, Access::ReadWrite)?;
        let url = public_url.clone().or_else(|| {
            let address = listener.local_addr().ok()?;
            (!address.ip().is_unspecified()).then(|| format!("http://{address}"))
        });
        let options = Options {
            config_path: args.config.clone(),
            data_dir,
            host_name,
            token,
            url,
        };
        let service = Service::new(options, config, Arc::new(SystemClock), store)?;
        service.hold_lock(lock);
        reload_on_sighup(service.clone());
        let router = alertd::http::router(service.clone());
        let limits = Limits {
            public_host: public_url.as_deref().and_then(alertd::address::url_host),
            per_client: server.connections_per_client,
            trusted_proxies: server.trusted_proxies,
            ..Limits::for_open_files(open_files, Duration::from_millis(idle_timeout))
        };
        let serve = move |stop| alertd::http::serve::serve(listener, router, limits, stop);
        service::run(service, serve, shutdown_signal()).await;
        Ok::<(), alertd::service::ServiceError>(())
    });
    // Work still running on blocking threads (a request past the grace
    // period) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error}");
            ExitCode::from(IO_FAILURE)
        }
    }
}

/// Raises the soft limit of open files to the hard limit, so that many
/// clients (each a file descriptor) do not exhaust it; returns the limit in
/// force.
fn raise_open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write `limit`.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                warn!("cannot read the open-files limit; assuming 1024");
                return 1024;
            }
            let soft = limit.rlim_cur;
            if soft < limit.rlim_max {
                limit.rlim_cur = limit.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    warn!(soft, "cannot raise the open-files limit");
                    limit.rlim_cur = soft;
                } else {
                    info!(from = soft, to = limit.rlim_max, "open-files limit raised");
                }
            }
            // rlim_t is u64 on Linux, not on every Unix.
            #[allow(clippy::useless_conversion)]
            u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX)
        }
    }
    #[cfg(not(unix))]
    1024
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => info!("interrupt received"),
                }
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reloads the configuration at every SIGHUP; a bad file is logged and ignored.
fn reload_on_sighup(service: Arc<Service>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(error) => {
                warn!(%error, "cannot listen for SIGHUP: no reloads");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            info!("SIGHUP received: reloading the configuration");
            let worker = service.clone();
            match tokio::task::spawn_blocking(move || worker.reload()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    for line in error.to_string().lines() {
                        error!("reload refused, the running configuration is kept: {line}");
                    }
                }
                Err(error) => error!(%error, "reload panicked"),
            }
        }
    });
    #[cfg(not(unix))]
    drop(service);
}
