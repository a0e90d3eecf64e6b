"""packaging - the .deb, the systemd unit, the container image files and the examples.

Nothing here builds an image or starts a service: the .deb is made with cpack from the build
directory and taken apart with dpkg-deb, the unit is checked by systemd-analyze against the
package's own file tree, the Dockerfiles go through two linters, and compose.yaml and the
Kubernetes example are parsed and held against the configuration they carry.

Environment: SMTPGATE_SOURCE_DIR, SMTPGATE_BUILD_DIR (a built tree), SMTPGATE_BIN (optional,
default SMTPGATE_BUILD_DIR/smtpgate). scripts/install-deps.sh installs every tool used here.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import unittest
from pathlib import Path

import yaml

SOURCE_DIR = Path(os.environ["SMTPGATE_SOURCE_DIR"]).resolve()
BUILD_DIR = Path(os.environ["SMTPGATE_BUILD_DIR"]).resolve()
SMTPGATE_BIN = Path(os.environ.get("SMTPGATE_BIN", BUILD_DIR / "smtpgate"))
LINTERS = Path("/opt/smtpgate-test/dockerfile-linters/node_modules/.bin")
DOCKERFILES = ("docker/Dockerfile", "docker/postfix/Dockerfile")
# Packages every Debian 12 image has; the image installs the rest of the .deb's Depends.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
INSTALL_HINT = "run scripts/install-deps.sh"


def run(args, timeout=300, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def seconds(duration):
    """A configuration duration ("30s", "1m", "700ms") or a compose one ("45s", "1m30s")."""
    if isinstance(duration, int):
        return duration
    parts = re.fullmatch(r"((\d+)(ms|s|m|h))+", duration)
    if not parts:
        raise ValueError(f"not a duration: {duration!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * scale[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def cache_value(name):
    text = (BUILD_DIR / "CMakeCache.txt").read_text()
    match = re.search(rf"^{re.escape(name)}:\w+=(.*)$", text, re.MULTILINE)
    return match.group(1) if match else None


def dockerfile_instructions(path):
    """(stage index, INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    instructions, pending, stage = [], "", -1
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped by Docker too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append((stage, keyword, " ".join(args.split())))
    return instructions


def unit_settings(path):
    """{"Section": {"Key": [values...]}} of a systemd unit file."""
    settings, section = {}, None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = settings.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return settings


def runtime_libs_of_install_deps():
    text = (SOURCE_DIR / "scripts/install-deps.sh").read_text()
    match = re.search(r"^runtime_libs=\(([^)]*)\)", text, re.MULTILINE)
    assert match, "scripts/install-deps.sh has no runtime_libs=(...) list"
    return set(match.group(1).split())


def check_config(testcase, toml_text, name):
    """The binary's own loader accepts the configuration (strict: unknown keys fail)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "smtpgate.toml"
        config.write_text(toml_text)
        result = run([SMTPGATE_BIN, "--config", config, "--check-config"], timeout=60)
    testcase.assertEqual(result.returncode, 0,
                         f"{name} fails smtpgate --check-config:\n{result.stdout}{result.stderr}")


class DebPackageTest(unittest.TestCase):
    """cpack -G DEB from the build directory, taken apart with dpkg-deb."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="smtpgate-packaging-"))
        cpack = shutil.which("cpack")
        assert cpack, "cpack not found"
        result = run([cpack, "--config", BUILD_DIR / "CPackConfig.cmake", "-G", "DEB",
                      "-B", cls.tmp / "out"], timeout=600)
        assert result.returncode == 0, f"cpack failed:\n{result.stdout}{result.stderr}"
        cls.debs = sorted((cls.tmp / "out").glob("*.deb"))
        assert len(cls.debs) == 1, f"cpack made {cls.debs}"
        cls.deb = cls.debs[0]
        listing = run(["dpkg-deb", "-c", cls.deb]).stdout
        # "-rwxr-xr-x root/root 1389056 2026-11-23 12:50 ./usr/sbin/smtpgate"
        cls.files = {}
        for line in listing.splitlines():
            fields = line.split(maxsplit=5)
            cls.files[fields[5].removeprefix(".").split(" -> ")[0]] = fields[0]
        cls.root = cls.tmp / "root"
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)
        cls.control = cls.tmp / "control"
        subprocess.run(["dpkg-deb", "-e", cls.deb, cls.control], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return run(["dpkg-deb", "-f", self.deb, name]).stdout.strip()

    def depends(self):
        return {d.split()[0] for d in self.field("Depends").split(", ") if d}

    def test_file_name_has_the_project_version_and_architecture(self):
        version = cache_value("CMAKE_PROJECT_VERSION")
        self.assertEqual(self.deb.name, f"smtpgate_{version}_amd64.deb")
        self.assertEqual(self.field("Package"), "smtpgate")
        self.assertEqual(self.field("Version"), version)

    def test_contents(self):
        expected = {
            "/usr/sbin/smtpgate": "-rwxr-xr-x",
            "/etc/smtpgate/smtpgate.toml": "-rw-r--r--",
            "/lib/systemd/system/smtpgate.service": "-rw-r--r--",
            "/usr/lib/sysusers.d/smtpgate.conf": "-rw-r--r--",
            "/usr/share/doc/smtpgate/README.md": "-rw-r--r--",
            "/usr/share/doc/smtpgate/packaging.md": "-rw-r--r--",
        }
        for path, mode in expected.items():
            with self.subTest(path=path):
                self.assertEqual(self.files.get(path), mode, f"{path} in {self.deb.name}")
        self.assertEqual((self.root / "etc/smtpgate/smtpgate.toml").read_bytes(),
                         (SOURCE_DIR / "config/smtpgate.toml").read_bytes())
        self.assertEqual((self.root / "lib/systemd/system/smtpgate.service").read_bytes(),
                         (SOURCE_DIR / "packaging/systemd/smtpgate.service").read_bytes())

    def test_the_configuration_is_a_conffile(self):
        conffiles = (self.control / "conffiles").read_text().split()
        self.assertEqual(conffiles, ["/etc/smtpgate/smtpgate.toml"])

    def test_control_fields(self):
        depends = self.depends()
        self.assertIn("libssl3", depends)
        self.assertTrue(any(re.fullmatch(r"libboost-program-options[\d.]+", d) for d in depends),
                        f"no Boost.Program_options library in Depends: {sorted(depends)}")
        self.assertEqual(self.field("Section"), "mail")
        self.assertEqual(self.field("Architecture"), "amd64")
        self.assertRegex(self.field("Maintainer"), r"^.+ <[^@ ]+@[^@ ]+>$")
        self.assertRegex(self.field("Description"), r"^\S.*\n .+")

    def test_image_runtime_libraries_cover_the_computed_depends(self):
        # The image's runtime stage installs install-deps.sh's runtime_libs on top of
        # debian:12-slim; a library the binary starts to link must be added there too.
        allowed = runtime_libs_of_install_deps() | BASE_IMAGE_PACKAGES
        missing = {d for d in self.depends() if d not in allowed}
        if cache_value("SMTPGATE_SANITIZE") == "ON":  # this build links the sanitizer runtimes
            missing = {d for d in missing if not re.fullmatch(r"lib(asan|ubsan)\d+", d)}
        self.assertEqual(missing, set(), "in the .deb's Depends, not in install-deps.sh's "
                         "runtime_libs (the container image would lack them)")

    def test_postinst_creates_the_user_and_does_not_start_the_service(self):
        postinst = self.control / "postinst"
        self.assertTrue(os.access(postinst, os.X_OK), "postinst is not executable")
        text = postinst.read_text()
        self.assertIn("systemd-sysusers smtpgate.conf", text)
        self.assertNotRegex(text, r"systemctl\s+(enable|start|restart)|deb-systemd-invoke")
        result = run(["sh", "-n", postinst])
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_sysusers_file_creates_the_unit_user(self):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "etc").mkdir()
            result = run(["systemd-sysusers", f"--root={tmp}",
                          self.root / "usr/lib/sysusers.d/smtpgate.conf"])
            self.assertEqual(result.returncode, 0, result.stderr)
            passwd = (Path(tmp) / "etc/passwd").read_text()
        user = unit_settings(self.root / "lib/systemd/system/smtpgate.service")["Service"]["User"]
        self.assertRegex(passwd, rf"(?m)^{user[0]}:x:\d+:\d+:[^:]*:/nonexistent:/usr/sbin/nologin$")

    def unit_root(self):
        """The package's tree plus the host's system units (the targets the unit names).

        systemd-analyze verify --root resolves ExecStart= inside that root, so the unit is
        verified exactly as the package installs it, against the binary the package installs,
        without rewriting the unit or touching the host's /usr/sbin."""
        root = self.tmp / "unit-root"
        if not root.exists():
            shutil.copytree(self.root, root, symlinks=True)
            shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                            symlinks=True, dirs_exist_ok=True)
        return root

    def test_systemd_analyze_verify(self):
        self.assertIsNotNone(shutil.which("systemd-analyze"), INSTALL_HINT)
        root = self.unit_root()
        result = run(["systemd-analyze", "verify", f"--root={root}",
                      root / "lib/systemd/system/smtpgate.service"])
        self.assertEqual(result.returncode, 0, f"{result.stdout}{result.stderr}")
        self.assertNotIn("smtpgate", result.stdout + result.stderr)

    def test_systemd_analyze_verify_notices_a_missing_binary(self):
        # The check above is only worth something if verify looks inside the root.
        root = self.unit_root()
        unit = root / "etc/systemd/system/smtpgate-broken.service"
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text((root / "lib/systemd/system/smtpgate.service").read_text()
                        .replace("/usr/sbin/smtpgate", "/usr/sbin/smtpgate-missing"))
        result = run(["systemd-analyze", "verify", f"--root={root}", unit])
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("smtpgate-missing", result.stdout + result.stderr)

    def test_unit_hardening_exposure_is_low(self):
        # systemd's own score, 0.0 (locked down) .. 10.0; threshold is in tenths.
        root = self.unit_root()
        result = run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                      "--threshold=20", "--no-pager",
                      root / "lib/systemd/system/smtpgate.service"])
        self.assertEqual(result.returncode, 0, "exposure above 2.0:\n" + result.stdout[-3000:]
                         + result.stderr)

    def test_unit_settings(self):
        unit = unit_settings(self.root / "lib/systemd/system/smtpgate.service")
        service = unit["Service"]
        self.assertEqual(service["ExecStart"],
                         ["/usr/sbin/smtpgate --config /etc/smtpgate/smtpgate.toml"])
        self.assertIn("/bin/kill -HUP $MAINPID", service["ExecReload"])
        self.assertEqual(service["User"], ["smtpgate"])
        self.assertEqual(service["AmbientCapabilities"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(service["CapabilityBoundingSet"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(service["Restart"], ["on-failure"])
        self.assertEqual(service["LimitNOFILE"], ["65536"])
        # SIGTERM drains for server.shutdown_grace: the unit must wait longer before SIGKILL.
        grace = tomllib.loads((SOURCE_DIR / "config/smtpgate.toml").read_text())
        self.assertGreater(seconds(service["TimeoutStopSec"][0]),
                           seconds(grace["server"]["shutdown_grace"]))
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                    "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                    "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute"):
            with self.subTest(key=key):
                self.assertEqual(service.get(key), ["yes"])
        self.assertEqual(service["ProtectSystem"], ["strict"])
        self.assertEqual(service["RestrictAddressFamilies"], ["AF_INET AF_INET6 AF_UNIX"])
        self.assertIn("@system-service", service["SystemCallFilter"])
        self.assertEqual(service["SystemCallArchitectures"], ["native"])
        self.assertEqual(unit["Install"]["WantedBy"], ["multi-user.target"])


class DockerfileTest(unittest.TestCase):
    """docker/Dockerfile and docker/postfix/Dockerfile: linted, and built the way CI builds."""

    def lint(self, path):
        """Findings of both linters, as text ("" when there are none)."""
        findings = []
        for tool in ("dockerfile-utils", "dockerfilelint"):
            self.assertTrue((LINTERS / tool).exists(), f"{LINTERS / tool} missing: {INSTALL_HINT}")
        result = run([LINTERS / "dockerfile-utils", "lint", path], timeout=60)
        if result.returncode != 0 or result.stdout.strip() or result.stderr.strip():
            findings.append(f"dockerfile-utils (exit {result.returncode}):\n"
                            f"{result.stdout}{result.stderr}")
        result = run([LINTERS / "dockerfilelint", "-o", "json", path], timeout=60)
        try:
            total = json.loads(result.stdout)["totalIssues"]
        except (ValueError, KeyError):
            total = None
        if result.returncode != 0 or total != 0:
            findings.append(f"dockerfilelint (exit {result.returncode}):\n"
                            f"{result.stdout}{result.stderr}")
        return "\n".join(findings)

    def test_dockerfiles_pass_the_linters(self):
        for dockerfile in DOCKERFILES:
            with self.subTest(dockerfile=dockerfile):
                self.assertEqual(self.lint(SOURCE_DIR / dockerfile), "")

    def test_the_linters_find_mistakes(self):
        # A linter that passes everything would make the test above worthless.
        mistakes = {
            "unknown flag": "FROM debian:12-slim\nCOPY --frm=builder /a /b\n",
            "healthcheck without command": "FROM debian:12-slim\nHEALTHCHECK CMD\n",
            "two CMDs": 'FROM debian:12-slim\nCMD ["a"]\nCMD ["b"]\n',
            "apt lists left in the layer": "FROM debian:12-slim\nRUN apt-get update\n",
            "sudo": "FROM debian:12-slim\nRUN sudo true\n",
            "latest tag": "FROM debian:latest\n",
        }
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in mistakes.items():
                with self.subTest(mistake=name):
                    path = Path(tmp) / "Dockerfile"
                    path.write_text(text)
                    self.assertNotEqual(self.lint(path), "")

    def test_builder_stage_installs_and_builds_with_the_ci_scripts(self):
        steps = dockerfile_instructions(SOURCE_DIR / "docker/Dockerfile")
        stages = [args for _, keyword, args in steps if keyword == "FROM"]
        self.assertEqual(stages, ["debian:12-slim AS builder", "debian:12-slim"])
        builder_runs = [args for stage, keyword, args in steps if stage == 0 and keyword == "RUN"]
        # The requirement: the install steps in the image are the script CI uses.
        self.assertTrue(any(re.match(r"\./scripts/install-deps\.sh --runtime-only( |$)", r)
                            for r in builder_runs), builder_runs)
        self.assertFalse(any("apt-get" in r for r in builder_runs),
                         "the builder stage installs packages itself, not with install-deps.sh")
        self.assertTrue(any(r.startswith("./scripts/build.sh ") and "Release" in r
                            for r in builder_runs), builder_runs)
        copies = [args for stage, keyword, args in steps if stage == 0 and keyword == "COPY"]
        self.assertEqual(copies[0], "scripts/ scripts/",
                         "the scripts come first, so the dependency layer stays cached")
        ci = (SOURCE_DIR / "scripts/test.sh").read_text()
        self.assertIn("./scripts/install-deps.sh", ci, "CI no longer uses install-deps.sh")

    def test_runtime_stage(self):
        steps = [(keyword, args) for stage, keyword, args
                 in dockerfile_instructions(SOURCE_DIR / "docker/Dockerfile") if stage == 1]
        runs = [a for k, a in steps if k == "RUN"]
        self.assertFalse([r for r in runs if "apt-get install" in r],
                         "the runtime stage installs packages with install-deps.sh only")
        self.assertTrue(any("install-deps.sh --runtime-libs curl" in r for r in runs), runs)
        self.assertIn(("COPY", "--from=builder /build/smtpgate /usr/sbin/smtpgate"), steps)
        setcap = [r for r in runs if "setcap" in r]
        self.assertEqual(len(setcap), 1, runs)
        self.assertIn("setcap cap_net_bind_service=+ep /usr/sbin/smtpgate", setcap[0])
        self.assertIn("apt-get purge -y -qq libcap2-bin", setcap[0],
                      "libcap2-bin must leave in the same layer")
        user = [a for k, a in steps if k == "USER"]
        self.assertEqual(len(user), 1)
        self.assertRegex(user[0], r"^[1-9]\d*:[1-9]\d*$", "USER must be numeric and not root")
        self.assertTrue(any(f"--uid {user[0].split(':')[0]} " in r and "smtpgate" in r
                            for r in runs), "USER is not the smtpgate user")
        self.assertIn(("VOLUME", '["/etc/smtpgate"]'), steps)
        self.assertIn(("EXPOSE", "25 9590"), steps)
        self.assertIn(("CMD", '["--config", "/etc/smtpgate/smtpgate.toml"]'), steps)
        self.assertIn(("ENTRYPOINT", '["/usr/sbin/smtpgate"]'), steps)
        healthcheck = [a for k, a in steps if k == "HEALTHCHECK"]
        self.assertEqual(len(healthcheck), 1)
        self.assertTrue(healthcheck[0].endswith(
            "CMD curl -fsS http://127.0.0.1:9590/healthz || exit 1"), healthcheck[0])

    def test_install_deps_rejects_an_unknown_mode(self):
        # Exits before it installs anything.
        result = run([SOURCE_DIR / "scripts/install-deps.sh", "--no-such-mode"], timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)

    def test_dockerignore_keeps_build_trees_out_and_sources_in(self):
        patterns = (SOURCE_DIR / ".dockerignore").read_text().split("\n")
        patterns = [p.strip() for p in patterns if p.strip() and not p.startswith("#")]
        for excluded in (".git", "build*"):
            self.assertIn(excluded, patterns)
        for needed in ("scripts", "src", "include", "CMakeLists.txt", "config", "bench"):
            with self.subTest(needed=needed):
                self.assertFalse(any(Path(needed).match(p.rstrip("/")) for p in patterns),
                                 f"{needed} is excluded from the build context")

    def test_postfix_image_has_the_smtpd_smtpgate_relays_to(self):
        steps = dockerfile_instructions(SOURCE_DIR / "docker/postfix/Dockerfile")
        text = " ".join(a for _, k, a in steps if k == "RUN")
        self.assertIn("postconf -M '10025/inet = 10025 inet n - n - - smtpd'", text)
        self.assertIn("postconf -P '10025/inet/smtpd_upstream_proxy_protocol = haproxy'", text)
        self.assertIn("postconf -M# smtp/inet", text, "Postfix must not take port 25 too")
        self.assertIn("'maillog_file = /dev/stdout'", text)
        self.assertIn(("CMD", '["postfix", "start-fg"]'), [(k, a) for _, k, a in steps])
        self.assertIn(("EXPOSE", "10025"), [(k, a) for _, k, a in steps])


class ComposeTest(unittest.TestCase):
    """docker/compose.yaml with docker/smtpgate.toml."""

    @classmethod
    def setUpClass(cls):
        cls.compose = yaml.safe_load((SOURCE_DIR / "docker/compose.yaml").read_text())
        cls.config_text = (SOURCE_DIR / "docker/smtpgate.toml").read_text()
        cls.config = tomllib.loads(cls.config_text)

    def test_services_and_network(self):
        services = self.compose["services"]
        self.assertEqual(set(services), {"smtpgate", "postfix"})
        gate, postfix = services["smtpgate"], services["postfix"]
        self.assertEqual(gate["ports"], ["2525:25"])
        self.assertNotIn("ports", postfix, "Postfix must not be published")
        self.assertEqual(gate["networks"], ["mail"])
        self.assertEqual(postfix["networks"], ["mail"])
        self.assertIn("mail", self.compose["networks"])
        compose_dir = SOURCE_DIR / "docker"
        context = (compose_dir / gate["build"]["context"]).resolve()
        self.assertEqual(context, SOURCE_DIR)
        self.assertTrue((context / gate["build"]["dockerfile"]).samefile(
            SOURCE_DIR / "docker/Dockerfile"))
        self.assertTrue((compose_dir / postfix["build"]["context"] / "Dockerfile").samefile(
            SOURCE_DIR / "docker/postfix/Dockerfile"))
        self.assertIn("./smtpgate.toml:/etc/smtpgate/smtpgate.toml:ro", gate["volumes"])
        self.assertIn("NET_BIND_SERVICE", gate.get("cap_add", []))

    def test_configuration_matches_the_services(self):
        host, _, port = self.config["backend"]["address"].rpartition(":")
        self.assertEqual((host, port), ("postfix", "10025"))
        self.assertEqual(self.config["backend"]["identity"], "proxy-v2")
        self.assertEqual(self.config["server"]["listen"], ["0.0.0.0:25"])
        self.assertEqual(self.config["admin"]["listen"], "127.0.0.1:9590",
                         "the image's HEALTHCHECK asks 127.0.0.1:9590")

    def test_stop_grace_period_outlasts_shutdown_grace(self):
        grace = seconds(self.config["server"]["shutdown_grace"])
        self.assertGreater(seconds(self.compose["services"]["smtpgate"]["stop_grace_period"]),
                           grace)

    def test_configuration_loads(self):
        check_config(self, self.config_text, "docker/smtpgate.toml")


class KubernetesTest(unittest.TestCase):
    """docker/kubernetes/smtpgate-sidecar.yaml."""

    @classmethod
    def setUpClass(cls):
        docs = list(yaml.safe_load_all(
            (SOURCE_DIR / "docker/kubernetes/smtpgate-sidecar.yaml").read_text()))
        cls.by_kind = {d["kind"]: d for d in docs}
        assert len(cls.by_kind) == len(docs) == 3, [d["kind"] for d in docs]
        cls.config_text = cls.by_kind["ConfigMap"]["data"]["smtpgate.toml"]
        cls.config = tomllib.loads(cls.config_text)
        cls.pod = cls.by_kind["Deployment"]["spec"]["template"]["spec"]
        cls.containers = {c["name"]: c for c in cls.pod["containers"]}

    def test_one_pod_with_the_mta_and_smtpgate(self):
        self.assertEqual(set(self.containers), {"postfix", "smtpgate"})
        self.assertEqual(self.config["backend"]["address"], "127.0.0.1:10025")
        self.assertIn("loopback-only", " ".join(self.containers["postfix"]["args"]),
                      "the MTA's smtpd must not be reachable from outside the pod")

    def test_probes_on_the_admin_listener(self):
        gate = self.containers["smtpgate"]
        ports = {p["name"]: p["containerPort"] for p in gate["ports"]}
        self.assertEqual(ports["smtp"], 25)
        admin_host, _, admin_port = self.config["admin"]["listen"].rpartition(":")
        self.assertEqual(admin_host, "0.0.0.0", "kubelet probes the pod IP, not loopback")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            with self.subTest(probe=probe):
                get = gate[probe]["httpGet"]
                self.assertEqual(get["path"], path)
                self.assertEqual(ports.get(get["port"], get["port"]), int(admin_port))

    def test_security_context(self):
        context = self.containers["smtpgate"]["securityContext"]
        self.assertIs(context["runAsNonRoot"], True)
        self.assertIs(context["readOnlyRootFilesystem"], True)
        self.assertEqual(context["capabilities"]["add"], ["NET_BIND_SERVICE"])
        self.assertEqual(context["capabilities"]["drop"], ["ALL"])
        # no_new_privs would disable the image's file capability, and with it port 25.
        self.assertIsNot(context.get("allowPrivilegeEscalation"), False)
        user = [a for s, k, a in dockerfile_instructions(SOURCE_DIR / "docker/Dockerfile")
                if s == 1 and k == "USER"][0]
        self.assertEqual(f"{context['runAsUser']}:{context['runAsGroup']}", user)

    def test_configuration_is_mounted(self):
        mounts = {m["name"]: m for m in self.containers["smtpgate"]["volumeMounts"]}
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        config_volumes = [n for n, v in volumes.items()
                          if v.get("configMap", {}).get("name")
                          == self.by_kind["ConfigMap"]["metadata"]["name"]]
        self.assertEqual(len(config_volumes), 1)
        self.assertEqual(mounts[config_volumes[0]]["mountPath"], "/etc/smtpgate")
        args = self.containers["smtpgate"].get("args", [])
        self.assertEqual(args, ["--config", "/etc/smtpgate/smtpgate.toml"])

    def test_termination_grace_outlasts_shutdown_grace(self):
        self.assertGreater(self.pod["terminationGracePeriodSeconds"],
                           seconds(self.config["server"]["shutdown_grace"]))

    def test_service_sends_port_25_to_smtpgate(self):
        service = self.by_kind["Service"]["spec"]
        labels = self.by_kind["Deployment"]["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(service["selector"].items() <= labels.items())
        self.assertEqual([(p["port"], p["targetPort"]) for p in service["ports"]], [(25, "smtp")])
        self.assertEqual(service.get("externalTrafficPolicy"), "Local",
                         "the client's source address must survive")

    def test_configuration_loads(self):
        check_config(self, self.config_text, "the ConfigMap's smtpgate.toml")


if __name__ == "__main__":
    unittest.main()
