//! `path.*` as Beats uses them: found before the rest of the configuration (the keystore
//! lives in `path.data`, and `${NAME}` needs the keystore), offered as `${path.config}`,
//! `${path.home}`, `${path.data}`, `${path.logs}`, and the directory relative file paths
//! are resolved against.
//!
//! Decisions (Beats: `libbeat/paths`, go-ucfg's resolvers):
//! * `path.config` is the directory of the configuration file (Beats: `path.home`, where its
//!   `-c` file is looked up; skidder finds `-c` from the working directory, so the file's
//!   own directory plays that part). It is not a key.
//! * `path.home` defaults to the working directory; relative `path.data` and `path.logs`
//!   are under it.
//! * Relative TLS files (`ssl.certificate_authorities`, `ssl.certificate`, `ssl.key`,
//!   `ssl.key_passphrase_path`) and `generator.replay` are resolved against `path.config`.
//!   Beats does so for the files its configuration loads (`paths.Resolve(paths.Config, ..)`
//!   for scripts, templates, `config_dir`) but opens TLS files as written
//!   (`tlscommon.NewPEMReader`: `os.Open`, the working directory); skidder treats TLS files
//!   like the others, so a configuration does not depend on where it is started from.
//!   `output.file.path` is not resolved (Beats does not either).

use std::path::{Path, PathBuf};

use super::{override_value, tree, Config, EnvSource, InputKind, LoadOptions, SslConfig};
use crate::credentials::{keystore, pem, Secret};

/// The four directories, resolved: `config` absolute, `data` and `logs` under `home`
/// when relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The configuration file's directory.
    pub config: PathBuf,
    /// `path.home` (default: the working directory, `.`).
    pub home: PathBuf,
    /// `path.data` under `path.home` (default `data`).
    pub data: PathBuf,
    /// `path.logs` under `path.home` (default `logs`).
    pub logs: PathBuf,
}

impl Paths {
    /// Reads `path.home`, `path.data` and `path.logs` with the precedence of a full load
    /// (file, `SKIDDER_PATH__*`, `-E path.*=`, then `--path.data`/`--path.logs`), without
    /// the keystore: this is how the keystore is found. `${VAR}` in these values comes
    /// from the environment. A file that cannot be read or parsed gives the defaults here;
    /// the full load reports it.
    pub fn early(opts: &LoadOptions<'_>) -> Self {
        let file = std::fs::read_to_string(&opts.path)
            .ok()
            .and_then(|text| tree::parse(&text).ok())
            .map(|node| node.to_json());
        let mut raw: [Option<String>; 3] = [None, None, None];
        const KEYS: [&str; 3] = ["home", "data", "logs"];
        for (slot, key) in raw.iter_mut().zip(KEYS) {
            if let Some(serde_json::Value::String(s)) = file
                .as_ref()
                .and_then(|f| f.get("path"))
                .and_then(|p| p.get(key))
            {
                *slot = Some(s.clone());
            }
            let var = format!("{}PATH__{}", super::ENV_PREFIX, key.to_ascii_uppercase());
            if let Some(v) = opts.env.get(&var) {
                *slot = Some(v);
            }
            for flag in &opts.overrides {
                if let Some((k, v)) = flag.split_once('=') {
                    if k.trim() == format!("path.{key}") {
                        if let serde_json::Value::String(s) = override_value(v) {
                            *slot = Some(s);
                        }
                    }
                }
            }
        }
        let [home, data, logs] = raw.map(|v| v.map(|s| expand_env(&s, &opts.env)));
        let home = PathBuf::from(home.unwrap_or_else(|| ".".to_string()));
        // The flags win, and are under `path.home` like any other value (as `app::data_dir`).
        let pick = |flag: &Option<PathBuf>, value: Option<String>, default: &str| {
            let p = flag
                .clone()
                .unwrap_or_else(|| PathBuf::from(value.unwrap_or_else(|| default.to_string())));
            under(&home, &p)
        };
        let data = pick(&opts.path_data, data, "data");
        let logs = pick(&opts.path_logs, logs, "logs");
        Self {
            config: config_dir(&opts.path),
            home,
            data,
            logs,
        }
    }

    /// The keystore file: `<path.data>/skidder.keystore`.
    pub fn keystore(&self) -> PathBuf {
        keystore::Keystore::path_in(&self.data)
    }

    /// `${path.config}`, `${path.home}`, `${path.data}`, `${path.logs}`.
    pub fn var(&self, name: &str) -> Option<String> {
        let p = match name {
            "path.config" => &self.config,
            "path.home" => &self.home,
            "path.data" => &self.data,
            "path.logs" => &self.logs,
            _ => return None,
        };
        Some(p.display().to_string())
    }
}

/// `p` under `base` when relative.
fn under(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The directory of the configuration file, absolute (relative files must not move when
/// skidder is started from another directory).
fn config_dir(file: &Path) -> PathBuf {
    // `-c skidder.yml` has the empty path as its parent: the working directory.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `${VAR}` and `${VAR:default}` from the environment only (for `path.*`, read before the
/// keystore is open); anything unresolved is left as written for the full load to report.
fn expand_env(s: &str, env: &EnvSource) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let value = env
            .get(name)
            .or_else(|| default.filter(|d| !d.starts_with('?')).map(str::to_string));
        out.push_str(&rest[..start]);
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Resolves the relative file paths of `cfg` against `path.config` (see the
/// [module documentation](self)). Inline PEM stays as written.
pub fn resolve_files(cfg: &mut Config, config_dir: &Path) {
    let out = &mut cfg.output;
    if let Some(ls) = out.logstash.as_mut() {
        resolve_ssl(&mut ls.ssl, config_dir);
    }
    if let Some(es) = out.elasticsearch.as_mut() {
        resolve_ssl(&mut es.ssl, config_dir);
        for p in [es.api_key_path.as_mut(), es.password_path.as_mut()]
            .into_iter()
            .flatten()
        {
            *p = under(config_dir, p);
        }
    }
    resolve_ssl(&mut cfg.http.ssl, config_dir);
    for input in cfg
        .skidder
        .inputs
        .iter_mut()
        .chain(cfg.filebeat.inputs.iter_mut())
    {
        match &mut input.kind {
            InputKind::Lumberjack(lj) => resolve_ssl(&mut lj.ssl, config_dir),
            InputKind::HttpEndpoint(h) => {
                resolve_ssl(&mut h.ssl, config_dir);
                if let Some(es) = h.auth.api_key.elasticsearch.as_mut() {
                    resolve_ssl(&mut es.ssl, config_dir);
                }
            }
            InputKind::Generator(g) => {
                if let Some(p) = g.replay.as_mut() {
                    *p = under(config_dir, p);
                }
            }
            InputKind::Stdin(_) | InputKind::Filestream(_) | InputKind::Log(_) => {}
        }
    }
}

fn resolve_ssl(ssl: &mut SslConfig, dir: &Path) {
    let file = |value: &str| -> Option<String> {
        pem::file_of(value)
            .filter(|p| p.is_relative() && !p.as_os_str().is_empty())
            .map(|p| dir.join(p).display().to_string())
    };
    for ca in &mut ssl.certificate_authorities {
        if let Some(f) = file(ca) {
            *ca = f;
        }
    }
    if let Some(f) = ssl.certificate.as_deref().and_then(file) {
        ssl.certificate = Some(f);
    }
    if let Some(f) = ssl.key.as_ref().and_then(|k| file(k.expose())) {
        ssl.key = Some(Secret::new(f));
    }
    if let Some(p) = ssl.key_passphrase_path.as_mut() {
        *p = under(dir, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn opts(path: &Path, env: &[(&str, &str)], flags: &[&str]) -> LoadOptions<'static> {
        LoadOptions {
            path: path.to_path_buf(),
            overrides: flags.iter().map(|f| f.to_string()).collect(),
            env: EnvSource::Fixed(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..LoadOptions::default()
        }
    }

    #[test]
    fn early_paths_follow_file_env_flags_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yml");
        std::fs::write(&file, "path.home: /srv/h\npath.data: ${D:d1}\n").unwrap();
        let p = Paths::early(&opts(&file, &[], &[]));
        assert_eq!(p.config, dir.path());
        assert_eq!(p.data, Path::new("/srv/h/d1"));
        assert_eq!(p.logs, Path::new("/srv/h/logs"));
        assert_eq!(p.keystore(), Path::new("/srv/h/d1/skidder.keystore"));
        let p = Paths::early(&opts(&file, &[("D", "/abs")], &[]));
        assert_eq!(p.data, Path::new("/abs"));
        let p = Paths::early(&opts(&file, &[("SKIDDER_PATH__DATA", "/env")], &[]));
        assert_eq!(p.data, Path::new("/env"));
        let p = Paths::early(&opts(
            &file,
            &[("SKIDDER_PATH__DATA", "/env")],
            &["path.data=/flag"],
        ));
        assert_eq!(p.data, Path::new("/flag"));
        let mut o = opts(&file, &[], &["path.data=/flag"]);
        o.path_data = Some(PathBuf::from("/cli"));
        assert_eq!(Paths::early(&o).data, Path::new("/cli"));
        let missing = Paths::early(&opts(&dir.path().join("none.yml"), &[], &[]));
        assert_eq!(missing.data, Path::new("./data"));
        let bare = Paths::early(&opts(Path::new("skidder.yml"), &[], &[]));
        assert_eq!(bare.config, std::env::current_dir().unwrap());
    }

    #[test]
    fn relative_tls_and_replay_files_resolve_against_the_config_dir() {
        let mut ssl = SslConfig {
            certificate_authorities: vec![
                "ca.pem".into(),
                "/etc/ca.pem".into(),
                "-----BEGIN CERTIFICATE-----\nx\n".into(),
            ],
            certificate: Some("certs/c.pem".into()),
            key: Some(Secret::new("k.pem")),
            key_passphrase_path: Some("pass.txt".into()),
            ..SslConfig::default()
        };
        resolve_ssl(&mut ssl, Path::new("/cfg"));
        assert_eq!(ssl.certificate_authorities[0], "/cfg/ca.pem");
        assert_eq!(ssl.certificate_authorities[1], "/etc/ca.pem");
        assert!(ssl.certificate_authorities[2].starts_with("-----BEGIN"));
        assert_eq!(ssl.certificate.as_deref(), Some("/cfg/certs/c.pem"));
        assert_eq!(ssl.key.as_ref().map(Secret::expose), Some("/cfg/k.pem"));
        assert_eq!(
            ssl.key_passphrase_path.as_deref(),
            Some(Path::new("/cfg/pass.txt"))
        );
    }
}
