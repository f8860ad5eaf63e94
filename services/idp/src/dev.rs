//! `idp dev`: every service in one process on embedded defaults.

use std::time::Duration;

use spid_config::Config;
use spid_server::CancellationToken;
use spid_types::ServiceName;

use crate::cli::Failure;

pub async fn run(mut config: Config, shutdown: CancellationToken) -> Result<(), Failure> {
    std::fs::create_dir_all(&config.dev.data_dir)
        .map_err(|e| Failure::Run(format!("dev.data_dir: cannot create {}: {e}", config.dev.data_dir.display())))?;

    // Bind every listener first: a taken port fails before anything starts,
    // and port 0 becomes a real port the other services can be told about.
    let mut listeners = Vec::new();
    for name in ServiceName::ALL {
        let l = crate::deps::listeners(&config, name)?;
        let grpc = l.grpc.local_addr().map_err(|e| Failure::Run(e.to_string()))?;
        let http = l.http.local_addr().map_err(|e| Failure::Run(e.to_string()))?;
        config.set_listen(name, grpc, http);
        if let Ok(url) = format!("http://{grpc}").parse() {
            config.set_grpc_url(name, url);
        }
        listeners.push((name, l));
    }

    let bus = crate::deps::bus(&config).await?;
    let mut runs = tokio::task::JoinSet::new();
    for (name, l) in listeners {
        let db = crate::deps::database(&config, name).await?;
        let cache = crate::deps::cache(&config, name).await?;
        let deps = crate::deps::with_listeners(name, db, bus.clone(), cache, l)?;
        let config = config.clone();
        let token = shutdown.clone();
        runs.spawn(async move { (name, crate::deps::run_service(&config, name, deps, token).await) });
    }
    print_banner(&config);
    let watch = tokio::spawn(announce_ready(config.clone(), shutdown.clone()));

    let mut failure = None;
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                failure.get_or_insert(Failure::Run(format!("{name}: {e}")));
                shutdown.cancel();
            }
            Err(e) => {
                failure.get_or_insert(Failure::Run(format!("a service task failed: {e}")));
                shutdown.cancel();
            }
        }
    }
    watch.abort();
    failure.map_or(Ok(()), Err)
}

fn print_banner(config: &Config) {
    let public = config.public_url.as_str().trim_end_matches('/');
    let data_dir = config.dev.data_dir.display();
    println!("SPID identity provider — development mode (SQLite under {data_dir}, embedded bus and cache)");
    println!("  public origin      {public}");
    println!("  development outbox {public}/dev/outbox");
    println!("  demo SP            {public}/demo-sp/");
    println!("  IdP metadata       {public}/metadata");
    for name in ServiceName::ALL {
        let s = config.service(name);
        println!(
            "  {:<18} http://{}/readyz   gRPC {}",
            name.as_str(),
            s.http_listen,
            s.grpc_url.as_str().trim_end_matches('/')
        );
    }
}

/// Prints one line once every service reports ready.
async fn announce_ready(config: Config, shutdown: CancellationToken) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let started = std::time::Instant::now();
    loop {
        let mut all = true;
        for name in ServiceName::ALL {
            let url = format!("http://{}/readyz", config.service(name).http_listen);
            let ok = client.get(&url).send().await.map(|r| r.status().is_success()).unwrap_or(false);
            all &= ok;
        }
        if all {
            println!("all services ready in {:.1}s", started.elapsed().as_secs_f64());
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
}
