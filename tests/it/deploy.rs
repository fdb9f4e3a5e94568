//! The files in deploy/ parse, carry what they must, and only use flags,
//! environment variables and metrics that the real binary has.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use super::util::*;

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(deploy().join(rel)).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(!docs.is_empty(), "{rel} is empty");
    docs
}

fn json(rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(deploy().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn s<'a>(y: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(y, |y, k| &y[*k])
}

/// Every container (init and main) in a pod template spec.
fn containers(pod_spec: &Yaml) -> Vec<&Yaml> {
    let mut out = Vec::new();
    for key in ["initContainers", "containers"] {
        if let Some(v) = pod_spec[key].as_vec() {
            out.extend(v.iter());
        }
    }
    out
}

/// `--flags` in a list of args (after the subcommand) and the subcommand.
fn flags_of(args: &[String]) -> (String, Vec<String>) {
    let sub = args.first().cloned().unwrap_or_default();
    let flags = args
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap().to_string())
        .collect();
    (sub, flags)
}

fn help(sub: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_replvault"))
        .args([sub, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sub} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that every flag and REPLVAULT_* variable exists for `sub`.
fn check_cli(sub: &str, flags: &[String], envs: &[String], what: &str) {
    let h = help(sub);
    for f in flags {
        assert!(
            h.contains(&format!("{f} "))
                || h.contains(&format!("{f}\n"))
                || h.contains(&format!("{f} <")),
            "{what}: `replvault {sub}` has no flag {f}"
        );
    }
    for e in envs {
        assert!(
            h.contains(&format!("env: {e}=")) || h.contains(&format!("env: {e}]")),
            "{what}: `replvault {sub}` reads no variable {e}"
        );
    }
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .map(|a| match a {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => panic!("unexpected arg {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_names(container: &Yaml) -> Vec<String> {
    container["env"]
        .as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .filter(|n| n.starts_with("REPLVAULT_"))
                .collect()
        })
        .unwrap_or_default()
}

fn check_replvault_containers(rel: &str, pod_spec: &Yaml) -> usize {
    let mut n = 0;
    for c in containers(pod_spec) {
        let image = c["image"].as_str().unwrap_or_default();
        assert!(!image.is_empty(), "{rel}: a container without an image");
        if !image.contains("replvault") {
            continue;
        }
        n += 1;
        let args = strings(&c["args"]);
        let (sub, flags) = flags_of(&args);
        check_cli(&sub, &flags, &env_names(c), rel);
        let sc = &c["securityContext"];
        assert_eq!(
            sc["runAsNonRoot"].as_bool(),
            Some(true),
            "{rel}: runAsNonRoot"
        );
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{rel}");
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{rel}"
        );
        assert!(
            c["resources"]["limits"]["memory"].as_str().is_some(),
            "{rel}: memory limit"
        );
        // Secrets come from Secrets.
        let text = format!("{c:?}");
        assert!(
            text.contains("secretKeyRef") || text.contains("secretRef"),
            "{rel}"
        );
    }
    n
}

#[test]
fn kubernetes_sidecar() {
    let docs = yaml_docs("kubernetes/sidecar.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Service", "StatefulSet"]);
    let sts = &docs[2];
    assert_eq!(sts["apiVersion"].as_str(), Some("apps/v1"));
    let pod = s(sts, &["spec", "template", "spec"]);
    assert_eq!(check_replvault_containers("sidecar.yaml", pod), 1);
    let sidecar = containers(pod)
        .into_iter()
        .find(|c| c["name"].as_str() == Some("replvault"))
        .unwrap();
    let args = strings(&sidecar["args"]);
    assert_eq!(args[0], "run");
    assert!(
        args.iter().any(|a| a.starts_with("redis://127.0.0.1")),
        "{args:?}"
    );
    // A failing probe on a sidecar would take Redis out of its Service or
    // restart a backup in flight: alerts watch backups instead.
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(sidecar[probe].is_badvalue(), "no {probe} on purpose");
    }
    // The non-root user reads the root-owned Secret through its group.
    assert_eq!(
        s(pod, &["securityContext", "fsGroup"]).as_i64(),
        sidecar["securityContext"]["runAsUser"].as_i64()
    );
    let annotations = s(sts, &["spec", "template", "metadata", "annotations"]);
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9187"));
    let key_volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("key"))
        .unwrap();
    assert_eq!(key_volume["secret"]["defaultMode"].as_i64(), Some(0o440));
}

#[test]
fn kubernetes_cronjob() {
    let docs = yaml_docs("kubernetes/cronjob.yaml");
    let cj = &docs[0];
    assert_eq!(cj["kind"].as_str(), Some("CronJob"));
    assert_eq!(cj["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(
        s(cj, &["spec", "concurrencyPolicy"]).as_str(),
        Some("Forbid")
    );
    let job = s(cj, &["spec", "jobTemplate", "spec"]);
    assert!(job["activeDeadlineSeconds"].as_i64().is_some());
    assert!(job["backoffLimit"].as_i64().is_some());
    let pod = s(job, &["template", "spec"]);
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    assert_eq!(check_replvault_containers("cronjob.yaml", pod), 2);
    assert_eq!(strings(&pod["initContainers"][0]["args"])[0], "backup");
    assert_eq!(strings(&pod["containers"][0]["args"])[0], "prune");
    assert_eq!(
        s(pod, &["securityContext", "fsGroup"]).as_i64(),
        Some(65532)
    );
}

#[test]
fn kubernetes_cluster_and_sentinel_deployments() {
    let docs = yaml_docs("kubernetes/cluster.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Deployment"]);
    for (d, want) in docs.iter().zip(["--cluster", "--pitr"]) {
        // One daemon per vault, never two during a rollout.
        assert_eq!(s(d, &["spec", "replicas"]).as_i64(), Some(1));
        assert_eq!(
            s(d, &["spec", "strategy", "type"]).as_str(),
            Some("Recreate")
        );
        let pod = s(d, &["spec", "template", "spec"]);
        assert_eq!(check_replvault_containers("cluster.yaml", pod), 1);
        let args = strings(&containers(pod)[0]["args"]);
        assert_eq!(args[0], "run");
        assert!(args.iter().any(|a| a == want), "{args:?}");
    }
    let pitr = strings(&containers(s(&docs[1], &["spec", "template", "spec"]))[0]["args"]);
    assert!(
        pitr.iter().any(|a| a.starts_with("sentinel://")),
        "{pitr:?}"
    );
}

#[test]
fn compose_file() {
    let docs = yaml_docs("compose/docker-compose.yml");
    let services = &docs[0]["services"];
    for name in ["redis", "minio", "make-bucket", "keygen", "replvault"] {
        assert!(!services[name].is_badvalue(), "service {name} missing");
    }
    assert_eq!(
        s(services, &["keygen", "build", "dockerfile"]).as_str(),
        Some("deploy/Dockerfile")
    );
    let rv = &services["replvault"];
    let args = strings(&rv["command"]);
    let (sub, flags) = flags_of(&args);
    assert_eq!(sub, "run");
    let envs: Vec<String> = rv["environment"]
        .as_hash()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .filter(|k| k.starts_with("REPLVAULT_"))
        .collect();
    check_cli(&sub, &flags, &envs, "docker-compose.yml");
    let keygen = strings(&services["keygen"]["entrypoint"]);
    assert_eq!(keygen[1], "keygen");
    check_cli(
        "keygen",
        &flags_of(&keygen[1..]).1,
        &[],
        "docker-compose.yml",
    );
    // Every `up` runs keygen: it must keep the key it made the first time.
    assert!(keygen.iter().any(|a| a == "--if-missing"), "{keygen:?}");
    // The key lives on the volume both services mount, at the directory
    // the image creates for its non-root user.
    let out = &keygen[keygen.iter().position(|a| a == "--out").unwrap() + 1];
    let key_file = &args[args.iter().position(|a| a == "--key-file").unwrap() + 1];
    assert_eq!(out, key_file);
    for svc in ["keygen", "replvault"] {
        let mounts = strings(&services[svc]["volumes"]);
        assert!(
            mounts
                .iter()
                .any(|m| m.starts_with("keys:/var/lib/replvault")),
            "{svc}: {mounts:?}"
        );
    }
    assert!(out.starts_with("/var/lib/replvault/"), "{out}");
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("--chown=65532:65532 /data /var/lib/replvault"),
        "the image must create /var/lib/replvault for its user"
    );
}

/// Metric names the running daemon exports.
fn exported_metrics() -> BTreeSet<String> {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    // No Redis needed: the daemon serves metrics while its backups fail.
    let no_redis = RefusedPort::new();
    let daemon = Daemon::start(&[
        "run",
        "--redis",
        &format!("redis://127.0.0.1:{}", no_redis.port),
        "--vault",
        work.path().join("vault").to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--every",
        "1h",
    ]);
    let mut s = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body.lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

#[test]
fn prometheus_alerts_use_exported_metrics() {
    let metrics = exported_metrics();
    assert!(
        metrics.contains("replvault_last_success_timestamp_seconds"),
        "{metrics:?}"
    );
    let docs = yaml_docs("prometheus/alerts.yml");
    let rules = docs[0]["groups"][0]["rules"].as_vec().unwrap();
    let mut alerts = Vec::new();
    for r in rules {
        let expr = r["expr"].as_str().unwrap();
        alerts.push(r["alert"].as_str().unwrap().to_string());
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("replvault_") {
                assert!(
                    metrics.contains(word),
                    "alert {:?} uses unknown metric {word}",
                    r["alert"]
                );
            }
        }
        assert!(r["annotations"]["summary"].as_str().is_some());
    }
    let stale = rules
        .iter()
        .find(|r| {
            r["expr"].as_str().is_some_and(|e| {
                e.contains("replvault_last_success_timestamp_seconds") && e.contains("26")
            })
        })
        .expect("a no-backup-in-26h rule");
    assert_eq!(stale["labels"]["severity"].as_str(), Some("critical"));
    assert!(alerts.len() >= 3, "{alerts:?}");
}

#[test]
fn iam_policies_and_lifecycle() {
    let actions = |p: &serde_json::Value| -> BTreeSet<String> {
        p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|st| {
                assert_eq!(st["Effect"], "Allow");
                st["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
            })
            .collect()
    };
    let rw = actions(&json("iam/policy.json"));
    for a in [
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:AbortMultipartUpload",
    ] {
        assert!(rw.contains(a), "policy.json lacks {a}");
    }
    assert!(!rw.iter().any(|a| a.contains('*')), "no wildcard actions");
    let ro = actions(&json("iam/restore-policy.json"));
    assert_eq!(
        ro,
        BTreeSet::from(["s3:GetObject".to_string(), "s3:ListBucket".to_string()])
    );

    let lc = json("s3/lifecycle.json");
    let rules = lc["Rules"].as_array().unwrap();
    let transitions: Vec<(i64, String)> = rules
        .iter()
        .flat_map(|r| r["Transitions"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            (
                t["Days"].as_i64().unwrap(),
                t["StorageClass"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [(30, "STANDARD_IA".to_string()), (90, "GLACIER".to_string())]
    );
    assert!(rules.iter().any(|r| r["Expiration"]["Days"] == 365));
    assert!(
        rules
            .iter()
            .any(|r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1)
    );
    // Manifests (small) stay out of the tiering rule.
    let tiering = rules.iter().find(|r| r["Transitions"].is_array()).unwrap();
    assert_eq!(tiering["Filter"]["And"]["ObjectSizeGreaterThan"], 131072);
}

#[test]
fn redis_acl_lines_work_on_a_real_server() {
    let server = RedisServer::start();
    let text = std::fs::read_to_string(deploy().join("redis/acl.conf")).unwrap();
    let users: Vec<&str> = text.lines().filter(|l| l.starts_with("user ")).collect();
    // The cluster users are tried on a real cluster (it::cluster).
    let users: Vec<&str> = users
        .into_iter()
        .filter(|l| !l.starts_with("user replvault-cluster"))
        .collect();
    assert_eq!(users.len(), 2);
    for line in users {
        let args: Vec<&str> = line["user ".len()..].split_whitespace().collect();
        let mut cmd = vec!["ACL", "SETUSER"];
        cmd.extend(args);
        assert_eq!(server.cmd(&cmd).text(), "OK", "{line}");
    }
    // The sync user can replicate and read no keys; the scan user can DUMP.
    assert_eq!(
        server.cmd(&["ACL", "DRYRUN", "replvault", "SYNC"]).text(),
        "OK"
    );
    assert!(
        server
            .cmd(&["ACL", "DRYRUN", "replvault", "GET", "k"])
            .text()
            .contains("no permissions")
    );
    assert_eq!(
        server
            .cmd(&["ACL", "DRYRUN", "replvault-scan", "DUMP", "k"])
            .text(),
        "OK"
    );
    assert!(
        server
            .cmd(&["ACL", "DRYRUN", "replvault-scan", "SET", "k", "v"])
            .text()
            .contains("no permissions")
    );
    // And each can back up: the sync user by replication, the scan user by
    // SCAN + DUMP, both to the server's DEBUG DIGEST.
    fill_every_type(&server);
    let password = text
        .lines()
        .find(|l| l.starts_with("user replvault "))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix('>')))
        .unwrap()
        .to_string();
    let url = |user: &str| format!("redis://{user}:{password}@127.0.0.1:{}", server.port);
    let m = super::backup_restore::round_trip(&server, &url("replvault"), &["--mode", "sync"]);
    assert_eq!(m["source"]["mode"], "sync", "{m}");
    let m = super::backup_restore::round_trip(&server, &url("replvault-scan"), &["--mode", "scan"]);
    assert_eq!(m["source"]["mode"], "scan", "{m}");
}

#[test]
fn dockerfile_shape() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage");
    assert!(text.contains("cargo build --release --locked"));
    assert!(froms[1].contains("distroless") && froms[1].contains("nonroot"));
    assert!(text.contains("USER nonroot"));
    assert!(text.contains("ENTRYPOINT [\"/replvault\"]"));
    assert!(Path::new(&root().join(".dockerignore")).exists());
}
