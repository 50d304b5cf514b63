//! Issue 10 §1: `clawgate ui install` against a fake npm registry on loopback serving the REAL
//! `openclaw@2026.9.6` tarball (from `npm pack`): the integrity check, extraction of only
//! `dist/control-ui/`, the asset-manifest check, the config edit that keeps comments, and
//! `--from` an existing install. Tampered and hostile tarballs are refused.

use clawgate_testkit::fake_npm::{self, FakeNpm};
use clawgate_testkit::gateway::Options;
use clawgate_testkit::GatewayProcess;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = "2026.9.6";
const CONFIG: &str = "# my own notes about this gateway\ngateway:\n  port: 18789 # keep this port\n  auth:\n    token: install-test-token_0123456789abcdef\n\n# trailing comment\n";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn home_with_config() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    clawgate_testkit::gateway::write_config(home.path(), CONFIG);
    home
}

async fn clawgate(home: &Path, args: &[&str]) -> Output {
    let home = home.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(bin())
            .args(&args)
            .env("CLAWGATE_HOME", &home)
            .env_remove("CLAWGATE_CONFIG")
            .output()
            .expect("run clawgate")
    })
    .await
    .unwrap()
}

async fn real_tarball() -> PathBuf {
    tokio::task::spawn_blocking(fake_npm::openclaw_tarball)
        .await
        .unwrap()
}

fn installed(home: &Path) -> PathBuf {
    home.join("control-ui").join(VERSION)
}

/// Nothing was installed and the config is untouched.
fn assert_nothing_installed(home: &Path, out: &Output) {
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!installed(home).exists(), "a build was left behind");
    let leftovers: Vec<_> = std::fs::read_dir(home.join("control-ui"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    assert_eq!(
        std::fs::read_to_string(home.join("config.yaml")).unwrap(),
        CONFIG
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_from_the_registry_verifies_extracts_and_points_the_config_at_it() {
    let tgz = real_tarball().await;
    let npm = FakeNpm::start().await;
    npm.publish("openclaw", VERSION, std::fs::read(&tgz).unwrap(), None);
    npm.publish("openclaw", "2026.9.5", b"not this one".to_vec(), None);
    let home = home_with_config();
    let out = clawgate(home.path(), &["ui", "install", "--registry", &npm.url()]).await;
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{so}\nstderr:\n{se}");
    // Metadata, then the default version's tarball.
    assert_eq!(
        npm.requests(),
        vec![
            "GET /openclaw".to_string(),
            format!("GET /-/openclaw-{VERSION}.tgz")
        ]
    );
    assert!(se.contains("MiB"), "no download progress: {se}");
    assert!(se.contains("Integrity verified"), "{se}");
    assert!(se.contains("asset-manifest.json"), "{se}");
    let root = installed(home.path());
    assert!(so.contains("gateway.controlUi.root"), "{so}");
    assert!(so.contains(&root.display().to_string()), "{so}");

    // Only dist/control-ui/ came out of the package.
    assert!(root.join("index.html").is_file());
    assert!(root.join("asset-manifest.json").is_file());
    assert!(root.join("assets").read_dir().unwrap().count() > 100);
    assert!(!root.join("package.json").exists() && !root.join("dist").exists());
    assert!(!home.path().join("control-ui/package").exists());

    // The edit kept the user's comments and layout.
    let cfg = std::fs::read_to_string(home.path().join("config.yaml")).unwrap();
    for keep in [
        "# my own notes about this gateway",
        "port: 18789 # keep this port",
        "# trailing comment",
    ] {
        assert!(cfg.contains(keep), "{keep} lost:\n{cfg}");
    }
    assert!(
        cfg.contains(&format!("    root: \"{}\"", root.display())),
        "{cfg}"
    );

    // And the gateway serves it.
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let body = tokio::task::spawn_blocking({
        let port = gw.port();
        move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            use std::io::{Read, Write};
            write!(
                s,
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("<openclaw-app>"));
}

/// The first fingerprinted script of the build inside the tarball.
fn some_asset(tgz: &Path) -> String {
    fake_npm::entry_names(tgz)
        .into_iter()
        .find(|n| n.starts_with("package/dist/control-ui/assets/") && n.ends_with(".js"))
        .expect("an asset in the tarball")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_file_is_refused_by_the_manifest_check() {
    let tgz = real_tarball().await;
    let asset = some_asset(&tgz);
    let tampered = tokio::task::spawn_blocking({
        let (tgz, asset) = (tgz.clone(), asset.clone());
        move || {
            let edit: &dyn Fn(&mut Vec<u8>) =
                &|d: &mut Vec<u8>| d.extend_from_slice(b"\n;fetch('//evil');");
            fake_npm::repack(&tgz, Some((&asset, edit)), None)
        }
    })
    .await
    .unwrap();
    let npm = FakeNpm::start().await;
    // The registry vouches for the tampered tarball: only the manifest can catch it.
    npm.publish("openclaw", VERSION, tampered, None);
    let home = home_with_config();
    let out = clawgate(home.path(), &["ui", "install", "--registry", &npm.url()]).await;
    let se = text(&out.stderr);
    assert!(se.contains("Integrity verified"), "{se}");
    let short = asset.trim_start_matches("package/dist/control-ui/");
    assert!(
        se.contains(short) && se.contains("asset-manifest.json"),
        "{se}"
    );
    assert_nothing_installed(home.path(), &out);

    // A file smuggled into assets/ that the manifest does not list is refused too.
    let smuggled = tokio::task::spawn_blocking({
        let tgz = tgz.clone();
        move || {
            fake_npm::repack(
                &tgz,
                None,
                Some(("package/dist/control-ui/assets/extra-XYZ.js", b"alert(1)")),
            )
        }
    })
    .await
    .unwrap();
    let npm = FakeNpm::start().await;
    npm.publish("openclaw", VERSION, smuggled, None);
    let out = clawgate(home.path(), &["ui", "install", "--registry", &npm.url()]).await;
    assert!(
        text(&out.stderr).contains("assets/extra-XYZ.js"),
        "{}",
        text(&out.stderr)
    );
    assert_nothing_installed(home.path(), &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_integrity_is_refused_before_extracting() {
    let tgz = real_tarball().await;
    let npm = FakeNpm::start().await;
    npm.publish(
        "openclaw",
        VERSION,
        std::fs::read(&tgz).unwrap(),
        Some(fake_npm::sri_sha512(b"some other tarball")),
    );
    let home = home_with_config();
    let out = clawgate(home.path(), &["ui", "install", "--registry", &npm.url()]).await;
    let se = text(&out.stderr);
    assert!(
        se.contains("does not match the published dist.integrity"),
        "{se}"
    );
    assert!(
        !se.contains("asset-manifest"),
        "extracted before checking: {se}"
    );
    assert_nothing_installed(home.path(), &out);

    // No sha512 at all: refused as unverifiable.
    let npm = FakeNpm::start().await;
    npm.publish(
        "openclaw",
        VERSION,
        std::fs::read(&tgz).unwrap(),
        Some("sha1-AAAA".into()),
    );
    let out = clawgate(home.path(), &["ui", "install", "--registry", &npm.url()]).await;
    assert!(
        text(&out.stderr).contains("no sha512"),
        "{}",
        text(&out.stderr)
    );
    assert_nothing_installed(home.path(), &out);

    // An unknown version names itself.
    let out = clawgate(
        home.path(),
        &[
            "ui",
            "install",
            "--registry",
            &npm.url(),
            "--version",
            "1.0.0",
        ],
    )
    .await;
    assert!(text(&out.stderr).contains("openclaw 1.0.0 is not published"));
    assert_nothing_installed(home.path(), &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tar_entries_are_refused() {
    let home = home_with_config();
    for (name, link) in [
        ("package/dist/control-ui/../../../../escape.txt", None),
        ("/tmp/clawgate-absolute-escape.txt", None),
        (
            "package/dist/control-ui/assets/link.js",
            Some("/etc/passwd"),
        ),
        (
            "package/dist/control-ui/assets/up.js",
            Some("../../../../x"),
        ),
    ] {
        let bytes = fake_npm::hostile_tarball(name, link);
        let npm = FakeNpm::start().await;
        npm.publish("openclaw", VERSION, bytes, None);
        let out = clawgate(home.path(), &["ui", "install", "--registry", &npm.url()]).await;
        let se = text(&out.stderr);
        assert!(se.contains("refusing the tarball"), "{name}: {se}");
        assert_nothing_installed(home.path(), &out);
        assert!(!home.path().join("escape.txt").exists());
        assert!(!Path::new("/tmp/clawgate-absolute-escape.txt").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_an_existing_openclaw_install() {
    let pkg =
        tokio::task::spawn_blocking(|| clawgate_testkit::npm::toolchain().openclaw_pkg.clone())
            .await
            .unwrap();
    for from in [pkg.clone(), pkg.join("dist/control-ui")] {
        let home = home_with_config();
        let out = clawgate(
            home.path(),
            &["ui", "install", "--from", &from.display().to_string()],
        )
        .await;
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
        let root = installed(home.path());
        assert!(root.join("index.html").is_file(), "{so}");
        let cfg = std::fs::read_to_string(home.path().join("config.yaml")).unwrap();
        assert!(
            cfg.contains(&format!("root: \"{}\"", root.display())),
            "{cfg}"
        );
        assert!(cfg.contains("# my own notes"));
        // Running it again replaces the build and reports the old value.
        let out = clawgate(
            home.path(),
            &["ui", "install", "--from", &from.display().to_string()],
        )
        .await;
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains(" → "), "{}", text(&out.stdout));
    }
    let home = home_with_config();
    let out = clawgate(
        home.path(),
        &["ui", "install", "--from", "/nonexistent-dir"],
    )
    .await;
    assert!(text(&out.stderr).contains("holds no Control UI build"));
    assert_nothing_installed(home.path(), &out);
}

#[tokio::test]
async fn dashboard_prints_the_url_with_the_token_and_the_base_path() {
    let home = home_with_config();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<html></html>").unwrap();
    let cfg = CONFIG.replace(
        "  auth:",
        &format!(
            "  controlUi:\n    root: {}\n    basePath: /oc\n  auth:",
            root.path().display()
        ),
    );
    clawgate_testkit::gateway::write_config(home.path(), &cfg);
    let out = clawgate(home.path(), &["dashboard", "--no-open"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "http://127.0.0.1:18789/oc/#token=install-test-token_0123456789abcdef"
    );
}
