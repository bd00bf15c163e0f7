"""
A real Airflow deployment for end-to-end tests and benchmarks: its own AIRFLOW_HOME, and the
api-server, scheduler, triggerer(s) and dag-processor as separate processes. Two kinds:

- LocalExecutor on a SQLite file in AIRFLOW_HOME (the default; tasks run under the scheduler);
- CeleryExecutor on a Postgres database and a Redis broker (``executor="CeleryExecutor"``,
  ``database_url``, ``broker_url``: tests/support/services.py starts both), with a
  ``celery worker`` process of ``worker_concurrency`` slots and ``triggerers`` triggerers.

Every process runs in its own session (process group), writes to its own log file, and is stopped
group-wide (SIGTERM, then SIGKILL); a last sweep kills anything still carrying this AIRFLOW_HOME.

The test process reads the deployment's metadata database directly (SQLAlchemy on the SQLite file
or the Postgres URL) and decrypts trigger kwargs with the deployment's Fernet key: the pytest
process's own Airflow configuration (tests/conftest.py) points at another AIRFLOW_HOME and is left
alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.support.net import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAILY_DAG_ID = "hailuo_daily_content"
#: a module in AIRFLOW_HOME/config: ``hostname()`` names a component's job rows after it
HOSTNAME_MODULE = "e2e_component"

FINISHED_RUN_STATES = ("success", "failed")


class DeploymentError(RuntimeError):
    """The deployment did not do what was expected in time; the message points at the logs."""


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


def _clean_environment() -> dict[str, str]:
    """The pytest process's environment without any Airflow setting it was given (tests/conftest.py)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_", "AIRFLOW__", "HAILUO_", "AWS_", "PYTEST_"))
        and key != "AIRFLOW_HOME"
    }


@dataclass
class AirflowDeployment:
    """One deployment. Build it with :meth:`start` (or the :func:`deployment` context manager)."""

    home: Path
    extra_env: Mapping[str, str]
    parallelism: int = 4
    #: "LocalExecutor" or "CeleryExecutor" (which needs ``broker_url`` and a server database)
    executor: str = "LocalExecutor"
    #: SQLAlchemy URL of the metadata database; None: a SQLite file in ``home``
    database_url: str | None = None
    broker_url: str | None = None
    worker_concurrency: int = 8
    triggerers: int = 1
    #: DAGs to wait for (parsed) and unpause at start
    dag_ids: Sequence[str] = (DAILY_DAG_ID,)
    #: more folders of DAG files, each its own bundle next to the example DAGs
    extra_dag_folders: Sequence[Path] = ()
    api_port: int = field(default_factory=free_port)
    fernet_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    components: dict[str, Component] = field(default_factory=dict)
    #: triggerer component name -> its TriggererJob id (the ``triggerer_id`` of the triggers it holds)
    triggerer_jobs: dict[str, int] = field(default_factory=dict)
    execution_api_warmup_seconds: float | None = None
    #: seconds taken by the phases of :meth:`start`
    timings: dict[str, float] = field(default_factory=dict)
    _engine: sa.Engine | None = None
    _token: str | None = None

    # -- configuration ------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.db_path}"

    @property
    def celery(self) -> bool:
        return self.executor == "CeleryExecutor"

    @property
    def bundles(self) -> list[dict[str, Any]]:
        folders = [("examples", DAGS), *((f"extra{i}", f) for i, f in enumerate(self.extra_dag_folders))]
        return [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(folder), "refresh_interval": 0},
            }
            for name, folder in folders
        ]

    @property
    def log_folder(self) -> Path:
        return self.home / "logs"

    @property
    def process_log_folder(self) -> Path:
        return self.home / "process-logs"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        env = _clean_environment()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-jwt-secret-" + self.fernet_key[:16],
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_folder),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(self.bundles),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # Only runs the tests trigger: no "latest interval" run appears when a DAG is unpaused.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A killed triggerer's triggers go to a healthy one after this many seconds.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
                "PYTHONUNBUFFERED": "1",
                # This checkout's package, whatever checkout the virtualenv's editable install
                # points at (a git worktree shares the main checkout's virtualenv).
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                "NO_PROXY": "*",
                "no_proxy": "*",
            }
        )
        if self.celery:
            if not (self.broker_url and self.database_url):
                raise DeploymentError("CeleryExecutor needs broker_url and database_url")
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                    # Celery's database result backend on the metadata database (SQLAlchemy URL).
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                }
            )
        env.update(self.extra_env)
        return env

    # -- processes ----------------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command against this deployment and return its output."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )
        if result.returncode != 0:
            raise DeploymentError(
                f"`airflow {' '.join(args)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def start_component(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Component:
        """Start ``airflow <args>`` in its own session; a second start of ``name`` gets a new log file."""
        self.process_log_folder.mkdir(parents=True, exist_ok=True)
        number = sum(1 for c in self.process_log_folder.glob(f"{name}*.log"))
        log_path = self.process_log_folder / (f"{name}.log" if number == 0 else f"{name}.{number}.log")
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
            )
        component = Component(name=name, process=process, log_path=log_path)
        self.components[name] = component
        return component

    def start_triggerer(self, name: str = "triggerer") -> Component:
        """
        Start a triggerer. Each one has its own log-server port (two on one host would otherwise
        fight over 8794; they run with --skip-serve-logs here anyway, since Airflow's log servers
        listen on every interface), and its name as the hostname of its job row, which is how
        :meth:`triggerer_job` tells the triggerers of one host apart.
        """
        return self.start_component(
            name,
            "triggerer",
            "--skip-serve-logs",
            env={
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{HOSTNAME_MODULE}.hostname",
                "E2E_COMPONENT_NAME": name,
            },
        )

    def triggerer_job(self, name: str) -> int | None:
        """The TriggererJob id of the triggerer started last as ``name`` (None before it registers)."""
        rows = self.query(
            "SELECT max(id) AS id FROM job WHERE job_type = 'TriggererJob' AND hostname = :name", name=name
        )
        return rows[0]["id"] if rows else None

    def _write_hostname_module(self) -> None:
        # AIRFLOW_HOME/config is on every Airflow process's sys.path.
        config = self.home / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / f"{HOSTNAME_MODULE}.py").write_text(
            '"""The hostname of a component\'s job rows: its name in the e2e deployment."""\n\n'
            "import os\nimport socket\n\n\n"
            "def hostname() -> str:\n"
            '    return os.environ.get("E2E_COMPONENT_NAME") or socket.getfqdn()\n'
        )

    def start_celery_worker(self, name: str = "celery-worker") -> Component:
        # --skip-serve-logs: the worker's log server would listen on every interface (see above).
        return self.start_component(
            name,
            "celery",
            "worker",
            "--skip-serve-logs",
            "--concurrency",
            str(self.worker_concurrency),
            "--without-gossip",
            "--without-mingle",
        )

    def kill_component(self, name: str) -> Component:
        """
        SIGKILL the component and every process of its group, like a lost machine. It is no longer
        one of :attr:`components` (whose deaths fail the waits); start it again by its name.
        """
        component = self.components.pop(name)
        _signal_group(component.pid, signal.SIGKILL)
        component.process.wait(timeout=30)
        return component

    def stop_component(self, name: str, grace: float = 15) -> None:
        component = self.components.pop(name, None)
        if component is None:
            return
        _signal_group(component.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=grace)
        _signal_group(component.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=10)

    def stray_processes(self) -> list[psutil.Process]:
        """Every live process (but this one) whose environment carries this AIRFLOW_HOME."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == os.getpid():
                continue
            try:
                if proc.environ().get("AIRFLOW_HOME") == str(self.home) and proc.status() != "zombie":
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return found

    def stop(self) -> None:
        # Workers and task processes first (LocalExecutor's live in the scheduler's group, Celery's in
        # the worker's), the api-server (which the tasks report to) last.
        first = [n for n in self.components if n.startswith("celery-worker")] + ["scheduler"]
        first += [n for n in self.components if n.startswith("triggerer")]
        for name in (*first, "dag-processor", "api-server"):
            self.stop_component(name)
        for name in list(self.components):
            self.stop_component(name)
        for proc in self.stray_processes():
            with suppress(psutil.Error):
                proc.kill()
        if self._engine is not None:
            self._engine.dispose()

    def logs_tail(self, lines: int = 30) -> str:
        parts = []
        for path in sorted(self.process_log_folder.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts)

    def start(self) -> AirflowDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.airflow("db", "migrate", timeout=300)
        self.timings["db migrate"] = time.monotonic() - started
        self._write_hostname_module()
        names = ["triggerer", *(f"triggerer-{n}" for n in range(2, self.triggerers + 1))]
        for name in names:
            self.start_triggerer(name)
        self.start_component("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port))
        self.start_component("dag-processor", "dag-processor")
        # --skip-serve-logs: Airflow's log servers bind every interface; the api-server reads the
        # task logs from the shared local folder anyway.
        self.start_component("scheduler", "scheduler", "--skip-serve-logs")
        if self.celery:
            self.start_celery_worker()
        # The logs' tail is read when a wait times out, so it shows what went wrong meanwhile.
        wait_for("the api-server", self._api_ready, 180, 0.5, detail=self.logs_tail, error=DeploymentError)
        self.timings["api-server ready"] = time.monotonic() - started
        wait_for(
            f"the DAGs {', '.join(self.dag_ids)} to be parsed",
            self._dag_parsed,
            120,
            0.5,
            detail=self.logs_tail,
            error=DeploymentError,
        )
        self.timings["DAGs parsed"] = time.monotonic() - started
        for dag_id in self.dag_ids:
            self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        if self.celery:
            wait_for(
                "the celery worker to be ready",
                self._worker_ready,
                180,
                0.5,
                detail=self.logs_tail,
                error=DeploymentError,
            )

        def registered() -> dict[str, int] | None:
            self._ensure_alive()
            jobs = {name: self.triggerer_job(name) for name in names}
            return {n: j for n, j in jobs.items() if j is not None} if all(jobs.values()) else None

        self.triggerer_jobs = wait_for(
            "the triggerers to register", registered, 180, 0.5, detail=self.logs_tail, error=DeploymentError
        )
        self.timings["started"] = time.monotonic() - started
        return self

    # -- the REST API -------------------------------------------------------------------------------
    def _api_ready(self) -> bool:
        self._ensure_alive()
        response = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
        if response.status_code != 200:
            return False
        # The Execution API (what task processes call) is built on its first request, which can take
        # longer than a task's client waits on a loaded machine (a first task then fails with a read
        # timeout and is retried): make that first request here.
        started = time.monotonic()
        response = requests.get(f"{self.api_url}/execution/health", timeout=300)
        self.execution_api_warmup_seconds = time.monotonic() - started
        return response.status_code == 200

    def _dag_parsed(self) -> bool:
        self._ensure_alive()
        rows = self.query("SELECT DISTINCT dag_id FROM serialized_dag")
        return set(self.dag_ids) <= {row["dag_id"] for row in rows}

    def _worker_ready(self) -> bool:
        self._ensure_alive()
        worker = next(c for n, c in self.components.items() if n.startswith("celery-worker"))
        return " ready." in worker.log_path.read_text(errors="replace")

    def _ensure_alive(self) -> None:
        for component in self.components.values():
            if not component.alive():
                raise DeploymentError(
                    f"{component.name} exited with {component.process.returncode}\n{self.logs_tail()}"
                )

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token is None:
            response = requests.get(f"{self.api_url}/auth/token", timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        response = requests.request(method, f"{self.api_url}{path}", headers=headers, timeout=60, **kwargs)
        if response.status_code >= 400:
            raise DeploymentError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> str:
        """Trigger a run through the REST API and return its run id."""
        body = {"logical_date": None, "conf": dict(conf)}
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    # -- the metadata database ----------------------------------------------------------------------
    @contextmanager
    def db(self) -> Iterator[sa.Connection]:
        if self._engine is None:
            connect_args = {"timeout": 60} if self.db_url.startswith("sqlite") else {}
            self._engine = sa.create_engine(
                self.db_url, connect_args=connect_args, poolclass=sa.pool.NullPool
            )
        with self._engine.connect() as conn:
            yield conn

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.db() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]

    def table_names(self) -> list[str]:
        """Every table of the metadata database (SQLite or Postgres)."""
        with self.db() as conn:
            return sorted(sa.inspect(conn).get_table_names())

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query(
            "SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id",
            dag_id=dag_id,
            run_id=run_id,
        )
        return rows[0]["state"] if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        def finished() -> str | None:
            self._ensure_alive()
            state = self.run_state(dag_id, run_id)
            return state if state in FINISHED_RUN_STATES else None

        return wait_for(
            f"run {run_id} to finish", finished, timeout, 1, detail=self.logs_tail, error=DeploymentError
        )

    def task_instances(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, task_id, map_index, state, try_number, pid, next_method, trigger_id "
            "FROM task_instance WHERE dag_id = :dag_id AND run_id = :run_id"
        )
        params: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id}
        if task_id is not None:
            sql += " AND task_id = :task_id"
            params["task_id"] = task_id
        return self.query(sql + " ORDER BY task_id, map_index", **params)

    def xcoms(self, dag_id: str, run_id: str, task_id: str) -> dict[int, Any]:
        """``{map_index: value}`` of the task's ``return_value`` XComs (stored as JSON)."""
        rows = self.query(
            "SELECT map_index, value FROM xcom WHERE dag_id = :dag_id AND run_id = :run_id "
            "AND task_id = :task_id AND key = 'return_value'",
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
        )
        return {row["map_index"]: _json_value(row["value"]) for row in rows}

    def decrypt(self, token: str) -> str:
        if token.startswith("{"):
            return token
        return Fernet(self.fernet_key.encode()).decrypt(token.encode()).decode()

    def triggers(self) -> dict[int, dict[str, Any]]:
        """``{trigger id: {"classpath", "kwargs" (decrypted, deserialized), "triggerer_id"}}``."""
        try:
            from airflow.sdk.serde import deserialize
        except ImportError:  # before Airflow 3.2
            from airflow.serialization.serde import deserialize  # type: ignore[no-redef]

        triggers = {}
        for row in self.query("SELECT id, classpath, kwargs, triggerer_id FROM trigger"):
            kwargs = deserialize(json.loads(self.decrypt(row["kwargs"])))
            triggers[row["id"]] = {
                "classpath": row["classpath"],
                "kwargs": kwargs,
                "raw": self.decrypt(row["kwargs"]),
                "triggerer_id": row["triggerer_id"],
            }
        return triggers


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signum)
    except (ProcessLookupError, PermissionError):
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


@contextmanager
def deployment(home: Path, extra_env: Mapping[str, str], **options: Any) -> Iterator[AirflowDeployment]:
    """Start an :class:`AirflowDeployment` (``options``: its fields) and stop it after."""
    airflow = AirflowDeployment(home=home, extra_env=extra_env, **options)
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
