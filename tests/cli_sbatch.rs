//! `ferry sbatch`: nothing given on the command line can add a line to the
//! batch script; the script asks `srun` to end the job when a rank fails;
//! a script file is created new and private, and `--submit` leaves none.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferry-cli-sbatch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes an executable shell script `name` into `dir`.
fn fake_tool(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Fixed CPUs and GPUs per rank, so no topology is read.
const SIZES: [&str; 4] = ["--cpus-per-rank", "1", "--gpus-per-rank", "0"];

#[test]
fn a_control_character_in_any_field_is_refused_and_no_script_is_written() {
    let dir = scratch("inject");
    let marker = dir.join("pwned");
    let touch = format!("touch {}", marker.display());
    let script = dir.join("job.sbatch");
    let script_arg = script.to_string_lossy().into_owned();
    // (the field as the error names it, the arguments before `--`, the program)
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "--output",
            vec!["--output".into(), format!("x.txt\n{touch} #")],
            vec!["/bin/true".into()],
        ),
        (
            "--time",
            vec!["--time".into(), "01:00:00\n#SBATCH --partition=evil".into()],
            vec!["/bin/true".into()],
        ),
        (
            "--partition",
            vec!["--partition".into(), "debug\r".into()],
            vec!["/bin/true".into()],
        ),
        (
            "--job-name",
            vec!["--job-name".into(), "a\x1b[2Jb".into()],
            vec!["/bin/true".into()],
        ),
        (
            "--job-name",
            vec!["--job-name".into(), "tab\tbed".into()],
            vec!["/bin/true".into()],
        ),
        ("the program", vec![], vec![format!("/bin/true\n{touch}")]),
        (
            "the program's argument 2",
            vec![],
            vec!["/bin/echo".into(), "fine".into(), format!("x\n{touch}")],
        ),
        (
            "--output",
            vec!["--output".into(), String::new()],
            vec!["/bin/true".into()],
        ),
    ];
    for (field, flags, program) in &cases {
        for to_file in [true, false] {
            let mut args: Vec<String> = vec!["sbatch".into()];
            args.extend(SIZES.iter().map(|s| s.to_string()));
            if to_file {
                args.extend(["--script".into(), script_arg.clone()]);
            }
            args.extend(flags.iter().cloned());
            args.push("--".into());
            args.extend(program.iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = ferry(&args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{field}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
            assert!(err.contains(field), "{field} not named in {err:?}");
            assert!(out.stdout.is_empty(), "{field}: {}", text(&out.stdout));
            assert!(!script.exists(), "{field}: a script was written");
        }
    }
    assert!(!marker.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn good_input_makes_a_private_script_whose_srun_line_runs_the_arguments_as_given() {
    let dir = scratch("good");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = dir.join("srun-args");
    // A stand-in for srun: writes its arguments one per line.
    fake_tool(
        &bin,
        "srun",
        &format!(
            "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'",
            seen.display()
        ),
    );
    let marker = dir.join("marker");
    let tricky = [
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        format!("a;touch {}", marker.display()),
        "it's".to_string(),
        "two words".to_string(),
        "*".to_string(),
        "--flag=x".to_string(),
    ];
    let script = dir.join("job.sbatch");
    let mut args = vec![
        "sbatch",
        "--nodes",
        "2",
        "--ranks-per-node",
        "4",
        "--time",
        "01:00:00",
        "--output",
        "out-%j.txt",
        "--script",
    ];
    let script_arg = script.to_string_lossy().into_owned();
    args.push(&script_arg);
    args.extend(SIZES);
    args.extend(["--", "./train"]);
    args.extend(tricky.iter().map(String::as_str));
    let out = ferry(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = std::fs::metadata(&script).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the script is private");
    let body = std::fs::read_to_string(&script).unwrap();
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --time=01:00:00",
        "#SBATCH --output=out-%j.txt",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
    let srun: Vec<&str> = body.lines().filter(|l| l.starts_with("srun ")).collect();
    assert_eq!(srun.len(), 1, "{body}");
    assert!(
        srun[0].starts_with("srun --mpi=pmix --kill-on-bad-exit=1 "),
        "{body}"
    );
    // Run as Slurm would (with srun standing in): the arguments arrive as
    // given, nothing in them runs.
    let ran = Command::new("bash")
        .arg(&script)
        .env("PATH", path_with(&bin))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    let got = std::fs::read_to_string(&seen).unwrap();
    let mut want = vec![
        "--mpi=pmix".to_string(),
        "--kill-on-bad-exit=1".into(),
        "./train".into(),
    ];
    want.extend(tricky.iter().cloned());
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
    assert!(!marker.exists(), "an argument ran as a command");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_existing_file_or_link_at_the_script_path_is_never_replaced() {
    let dir = scratch("exists");
    let mine = dir.join("mine.sbatch");
    std::fs::write(&mine, "my own script\n").unwrap();
    let link = dir.join("link.sbatch");
    let target = dir.join("target");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for path in [&mine, &link] {
        let p = path.to_string_lossy().into_owned();
        let mut args = vec!["sbatch", "--script", &p];
        args.extend(SIZES);
        args.extend(["--", "/bin/true"]);
        let out = ferry(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&p), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my own script\n");
    assert!(!target.exists(), "written through the link");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn submit_hands_the_script_to_sbatch_on_stdin_and_leaves_no_file() {
    let dir = scratch("submit");
    let bin = dir.join("bin");
    let tmp = dir.join("tmp");
    std::fs::create_dir(&bin).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    let argv = dir.join("argv");
    let stdin = dir.join("stdin");
    fake_tool(
        &bin,
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" > '{}'; cat > '{}'; echo 'Submitted batch job 42'",
            argv.display(),
            stdin.display()
        ),
    );
    let mut args = vec!["sbatch", "--submit", "--wait"];
    args.extend(SIZES);
    args.extend(["--", "/bin/true"]);
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(&args)
        .env("PATH", path_with(&bin))
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Submitted batch job 42"));
    assert_eq!(
        std::fs::read_to_string(&argv).unwrap(),
        "--wait\n",
        "no script file is named to sbatch"
    );
    let body = std::fs::read_to_string(&stdin).unwrap();
    assert!(body.starts_with("#!/bin/bash\n"), "{body}");
    assert!(
        body.contains("srun --mpi=pmix --kill-on-bad-exit=1 /bin/true"),
        "{body}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");

    // An sbatch that refuses without reading: its reason, exit code 1.
    fake_tool(
        &bin,
        "sbatch",
        "echo 'sbatch: error: invalid partition' >&2; exit 1",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(&args)
        .env("PATH", path_with(&bin))
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid partition"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sizes_out_of_bounds_are_one_line_errors() {
    for (args, code, named) in [
        (&["--ranks-per-node", "65537"][..], 2, "--ranks-per-node"),
        (
            &["--ranks-per-node", "4294967296"][..],
            2,
            "--ranks-per-node",
        ),
        (&["--nodes", "0"][..], 2, "--nodes"),
        (&["--nodes", "1048577"][..], 2, "--nodes"),
        (
            &["--nodes", "1048576", "--ranks-per-node", "2"][..],
            1,
            "--nodes",
        ),
    ] {
        let mut all = vec!["sbatch"];
        all.extend(args);
        all.extend(SIZES);
        all.extend(["--", "/bin/true"]);
        let out = ferry(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.lines().next().unwrap_or("").contains(named), "{err}");
        assert!(out.stdout.is_empty(), "{args:?}: a script was printed");
    }
    for (flag, value) in [
        ("--cpus-per-rank", "0"),
        ("--cpus-per-rank", "65537"),
        ("--cpus-per-rank", "18446744073709551615"),
        ("--gpus-per-rank", "65537"),
    ] {
        let out = ferry(&["sbatch", flag, value, "--", "/bin/true"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.lines().next().unwrap_or("").contains(flag), "{err}");
        assert!(
            out.stdout.is_empty(),
            "{flag} {value}: a script was printed"
        );
    }
}
