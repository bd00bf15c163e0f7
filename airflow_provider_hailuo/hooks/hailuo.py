"""
HailuoHook: the only place that sends anything to the service, and the only holder of the key.

What goes on the wire is the connection's dialect's (``dialects/``: paths, field names, how an
answer is read); the hook sends it, sync on workers (``requests``, with requests-toolbelt's TCP
keep-alive adapter) and async in the triggerer (``aiohttp`` on one shared session), with one retry
policy for both. It is a plain ``BaseHook``, not the http provider's ``HttpHook``: that class
defaults to Basic auth and copies every connection extra into the request headers (neither may
happen to an API key), and its module imports aiohttp eagerly, ~90 ms added to every worker task.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity
from airflow.providers.common.compat.sdk import BaseHook

if TYPE_CHECKING:
    import requests

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoDownloadError,
    HailuoError,
    HailuoLinkExpiredError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoSubmitUncertainError,
    HailuoTransportError,
    TaskResult,
    VideoRequest,
    check_http_url,
)
from airflow_provider_hailuo.dialects import (
    Dialect,
    HttpCall,
    ResolvedRequest,
    dialect_for,
    dialects_of_family,
)
from airflow_provider_hailuo.hooks.connection import (
    ConnectionSettings,
    build_ssl_context,
    connection_settings,
    form_widgets,
    ui_field_behaviour,
)
from airflow_provider_hailuo.hooks.retry import is_retryable_read, retry_kwargs
from airflow_provider_hailuo.hooks.submit_rule import (
    SubmitVerdict,
    may_send_again,
    refused_for_now,
    submit_verdict,
)

USER_AGENT = "airflow-provider-hailuo"
#: A connection test answers within about this many seconds: one attempt, short timeouts.
CONNECTION_TEST_TIMEOUT = (3.0, 7.0)

log = logging.getLogger(__name__)
T = TypeVar("T")


class _BearerAuth:
    """A requests auth callable adding the key at send time; its repr never shows it."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth ***>"


class HailuoHook(BaseHook):
    """
    Talk to the Hailuo video API (PPInfra, Novita AI or MiniMax) through an Airflow connection.

    :param hailuo_conn_id: connection of type ``hailuo``: host = base URL, password = API key;
        extras ``api``, ``group_id``, ``verify``, ``ca_bundle``, ``timeout`` (see the README).
    :param timeout: (connect, read) seconds for API calls; default (10, the connection's ``timeout``
        extra or 30).
    :param retry_limit: attempts per call, the first included.
    :param retry_min_wait: first backoff wait in seconds (doubles each time, with jitter).
    :param retry_max_wait: the longest backoff wait.
    :param retry_after_cap: the longest ``Retry-After`` that is honoured as given.
    """

    conn_name_attr = "hailuo_conn_id"
    default_conn_name = "hailuo_default"
    conn_type = "hailuo"
    hook_name = "MiniMax Hailuo"

    def __init__(
        self,
        hailuo_conn_id: str = default_conn_name,
        *,
        timeout: tuple[float, float] | None = None,
        retry_limit: int = 5,
        retry_min_wait: float = 1.0,
        retry_max_wait: float = 30.0,
        retry_after_cap: float = 120.0,
    ) -> None:
        super().__init__()
        self.hailuo_conn_id = hailuo_conn_id
        self._timeout = timeout
        self.retry_limit = retry_limit
        self.retry_min_wait = retry_min_wait
        self.retry_max_wait = retry_max_wait
        self.retry_after_cap = retry_after_cap
        self._settings: ConnectionSettings | None = None
        self._shared_entry: _SharedSettings | None = None
        self._session: requests.Session | None = None

    # The connection form on Airflow < 3.2 (3.2+ reads the provider info's conn-fields instead).
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour()

    # ----------------------------------------------------------------------------------------------
    # connection
    # ----------------------------------------------------------------------------------------------
    @property
    def settings(self) -> ConnectionSettings:
        """Resolved once per hook with the sync ``get_connection`` (workers only)."""
        if self._settings is None:
            conn = self.get_connection(self.hailuo_conn_id)
            self._settings = connection_settings(conn, conn.extra_dejson)
            _mask(self._settings.api_key)
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """
        Resolved without blocking the event loop, and shared by the loop's triggers for a minute.

        A triggerer that starts (or takes over) ten thousand waits would otherwise look the same
        connection up ten thousand times at once; one lookup per connection id serves them all.
        """
        if self._settings is None:
            self._shared_entry = _shared_entry(self.hailuo_conn_id, self._resolve_async)
            self._settings = await _await_entry(self.hailuo_conn_id, self._shared_entry)
        return self._settings

    async def _resolve_async(self) -> ConnectionSettings:
        from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

        conn = await get_async_connection(self.hailuo_conn_id, hook=self)
        settings = connection_settings(conn, await get_async_extra_dejson(conn))
        await _amask(settings.api_key)
        # Looked up once here, in a thread (~/.netrc and a CA bundle are files), not on every poll:
        # an SSLContext is part of aiohttp's pool key, so one per settings keeps connections reused.
        proxy, proxy_auth = await asyncio.to_thread(_env_proxy, settings.base_url)
        ssl_context = await asyncio.to_thread(build_ssl_context, settings.verify)
        return replace(settings, proxy=proxy, proxy_auth=proxy_auth, ssl_context=ssl_context)

    def _refresh_after_auth_error(self) -> bool:
        """
        Drop the shared settings this hook used, once: a rotated key is looked up again.

        Only the entry this hook read is dropped; if another trigger has already replaced it, the
        fresh one is reused. N triggers failing on one stale key make one lookup, not N.
        """
        if self._shared_entry is None:
            return False
        _drop_entry(self.hailuo_conn_id, self._shared_entry)
        self._settings = None
        self._shared_entry = None
        return True

    def get_conn(self) -> requests.Session:
        """A keep-alive session carrying the key; connection extras never become headers."""
        if self._session is None:
            import requests

            from airflow_provider_hailuo.hooks.wire import WatchedAdapter

            settings = self.settings
            session = requests.Session()
            session.auth = _BearerAuth(settings.api_key)
            session.verify = settings.verify
            session.headers["User-Agent"] = USER_AGENT
            # Keep-alive probes stop idle NAT/load-balancer paths from silently dropping the socket;
            # the watch tells a failure before the first request byte from one after it.
            adapter = WatchedAdapter(idle=120, count=20, interval=30)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
        return self._session

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds: the hook's argument, else the connection's ``timeout`` extra."""
        if self._timeout is not None:
            return self._timeout
        read = self._settings.timeout if self._settings and self._settings.timeout else 30.0
        return (10.0, read)

    @cached_property
    def _download_session(self) -> requests.Session:
        """
        A separate, keyless session: download links are pre-signed storage URLs, not API calls.

        It keeps the system's trust store: a CA bundle set for a private API gateway would make
        every storage link fail verification. Only ``verify: false`` turns checks off here too.
        """
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        # The bytes on the wire are the file: no transfer compression, so Content-Length checks them.
        session.headers["Accept-Encoding"] = "identity"
        session.verify = self.settings.download_verify
        return session

    def _retrying(self, what: str, retryable: Any, attempts: int | None = None) -> dict[str, Any]:
        return retry_kwargs(
            what,
            retryable,
            attempts=attempts or self.retry_limit,
            initial_wait=self.retry_min_wait,
            max_wait=self.retry_max_wait,
            retry_after_cap=self.retry_after_cap,
        )

    @property
    def dialect(self) -> Dialect:
        """The vendor's wire, as the connection names it (``api`` extra, else the host)."""
        return _dialect_of(self.settings)

    @property
    def submits_per_minute(self) -> float | None:
        """The account's submit allowance (connection extra ``submits_per_minute``), if stated."""
        return self.settings.submits_per_minute

    def _send(
        self,
        call: HttpCall,
        parse: Callable[[int, Mapping[str, str], bytes], T],
        *,
        what: str,
        retryable: Callable[[BaseException], bool],
        attempts: int | None = None,
        timeout: tuple[float, float] | None = None,
        fresh_connection: bool = False,
        on_attempt: Callable[[], None] | None = None,
    ) -> T:
        """
        Send one call with its retry policy; ``parse`` (the dialect's) reads each answer inside the
        attempt, so a garbled 2xx is retried (or not) by the same rule on workers and in the triggerer.

        A transport failure becomes :class:`HailuoTransportError` saying whether any request byte
        had been written. ``fresh_connection`` never reuses a pooled socket: a keep-alive socket the
        server closed while idle fails only after the request was written, which for a submit would
        leave "may have been accepted" where nothing was.
        """
        from airflow_provider_hailuo.hooks.wire import transport_error, watch_exchange

        session = self.get_conn()
        url = self.settings.url(call.path)
        for attempt in tenacity.Retrying(**self._retrying(what, retryable, attempts)):
            with attempt:
                if fresh_connection:
                    session.close()  # empties the pools; the session stays usable
                if on_attempt is not None:
                    on_attempt()
                with watch_exchange() as exchange:
                    try:
                        response = session.request(
                            call.method,
                            url,
                            params=dict(call.params) or None,
                            json=call.json,
                            timeout=timeout or self.timeout,
                            # Per request: a session's CA bundle would lose to REQUESTS_CA_BUNDLE.
                            verify=self.settings.verify,
                        )
                    except Exception as err:
                        if _is_requests_error(err) or exchange.request_started:
                            raise transport_error(err, exchange, self.settings.base_url) from err
                        raise  # raised while preparing the request: nothing left this process
                return parse(response.status_code, response.headers, response.content)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _asend(
        self,
        call: HttpCall,
        parse: Callable[[int, Mapping[str, str], bytes], T],
        *,
        what: str,
        retryable: Callable[[BaseException], bool],
    ) -> T:
        """The same for the triggerer: aiohttp on the loop's shared session, nothing blocking."""
        import aiohttp  # only the triggerer pays for importing aiohttp, not every worker task

        from airflow_provider_hailuo.hooks.async_session import shared_client_session

        settings = await self.asettings()
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout[0], total=sum(self.timeout))
        async with shared_client_session() as session:
            async for attempt in tenacity.AsyncRetrying(**self._retrying(what, retryable)):
                with attempt:
                    try:
                        async with session.request(
                            call.method,
                            settings.url(call.path),
                            params=dict(call.params) or None,
                            json=call.json,
                            headers={**settings.auth_header, "User-Agent": USER_AGENT},
                            ssl=settings.ssl_context,
                            proxy=settings.proxy,
                            proxy_auth=settings.proxy_auth,
                            timeout=timeout,
                        ) as response:
                            status, headers, body = response.status, response.headers, await response.read()
                    except (TimeoutError, aiohttp.ClientError) as err:
                        # Imported on failure only: wire.py brings requests and urllib3, which a
                        # triggerer's first read would otherwise import on the event loop.
                        from airflow_provider_hailuo.hooks.wire import aiohttp_transport_error

                        raise aiohttp_transport_error(err, settings.base_url) from err
                    return parse(status, headers, body)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    # ----------------------------------------------------------------------------------------------
    # the API
    # ----------------------------------------------------------------------------------------------
    def validate(self, request: VideoRequest) -> ResolvedRequest:
        """Check a request against the connection's vendor and model rules; nothing is sent."""
        resolved = self.dialect.validate(request)
        if resolved.warning:
            self.log.warning("%s", resolved.warning)
        return resolved

    def submit(self, request: VideoRequest, *, wait_out_refusals: bool = True) -> str:
        """
        Queue one paid generation and return its task id.

        Sent again only while the evidence says the service created nothing (the rule in
        ``hooks/submit_rule.py``); when the submission may have been accepted it raises
        :class:`HailuoSubmitUncertainError`, naming the connection and when the request was sent.

        ``wait_out_refusals=False`` raises the service's first "not now" (429, its own 503, MiniMax
        1002) instead of sleeping it out here: a caller that can wait without holding a worker
        (the submit operator defers) should not sit through five attempts of a rate limit.
        Failed connects are still retried here.
        """
        resolved = self.validate(request)
        dialect = self.dialect
        sent_at: list[str] = []
        retryable = may_send_again if wait_out_refusals else _may_send_again_at_once
        try:
            task_id = self._send(
                resolved.call,
                partial(dialect.parse_submit, conn_id=self.hailuo_conn_id),
                what="submit",
                retryable=retryable,
                fresh_connection=True,
                on_attempt=lambda: sent_at.append(_utc_now()),
            )
        except HailuoError as err:
            if submit_verdict(err) is SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED:
                raise HailuoSubmitUncertainError.because(
                    str(err),
                    conn_id=self.hailuo_conn_id,
                    sent_at=sent_at[-1] if sent_at else None,
                    console=dialect.console,
                ) from err
            raise
        self.log.info(
            "Submitted Hailuo generation (%s, model %s): task_id=%s", dialect.name, resolved.model, task_id
        )
        return task_id

    def get_task_result(
        self, task_id: str, *, attempts: int | None = None, timeout: tuple[float, float] | None = None
    ) -> TaskResult:
        """Read a task once (with retries on transient trouble, a garbled answer included); for workers."""
        dialect = self.dialect
        return self._send(
            dialect.read_call(task_id),
            partial(dialect.parse_read, task_id=task_id, conn_id=self.hailuo_conn_id),
            what="task-result",
            retryable=is_retryable_read,
            attempts=attempts,
            timeout=timeout,
        )

    async def aget_task_result(self, task_id: str) -> TaskResult:
        """The same read for the triggerer; a refused key is looked up again once (it may be rotated)."""
        try:
            return await self._aread_task(task_id)
        except HailuoAuthError:
            if not self._refresh_after_auth_error():
                raise
            return await self._aread_task(task_id)

    async def _aread_task(self, task_id: str) -> TaskResult:
        dialect = _dialect_of(await self.asettings())
        return await self._asend(
            dialect.read_call(task_id),
            partial(dialect.parse_read, task_id=task_id, conn_id=self.hailuo_conn_id),
            what="task-result",
            retryable=is_retryable_read,
        )

    def video_link(self, result: TaskResult) -> str:
        """
        A fresh download link for a finished task: the result's own link, or for MiniMax one signed
        by file retrieval now. Raises :class:`HailuoNoVideoError` when there is nothing to download.
        """
        dialect = self.dialect
        call = dialect.link_call(result)
        if call is None:
            return str(result.video_url)
        return self._send(
            call,
            partial(dialect.parse_link, task_id=result.task_id, conn_id=self.hailuo_conn_id),
            what="file-retrieval",
            retryable=is_retryable_read,
        )

    @contextmanager
    def stream_video(
        self, url: str, *, timeout: tuple[float, float] = (10.0, 60.0)
    ) -> Iterator[requests.Response]:
        """
        Open a video link for streaming, without the API key.

        A 403 means the pre-signed link expired: :class:`HailuoLinkExpiredError` tells the caller to
        read the task again for a fresh link.
        """
        import requests

        check_http_url("video_url", url)
        try:
            response = self._download_session.get(
                url, stream=True, timeout=timeout, verify=self.settings.download_verify
            )
        except requests.RequestException as err:
            raise HailuoDownloadError(f"Could not open the video link: {type(err).__name__}") from err
        try:
            if response.status_code == 403:
                raise HailuoLinkExpiredError("The video link was refused (403): it has probably expired")
            if not 200 <= response.status_code < 300:
                raise HailuoDownloadError(f"The video link answered HTTP {response.status_code}")
            yield response
        finally:
            response.close()

    def test_connection(self) -> tuple[bool, str]:
        """
        Read a task that does not exist: free, and it proves the host answers and takes the key.

        One attempt with short timeouts, so the form's Test button answers within about ten seconds,
        and a message that says what a person can act on. It never raises: the form shows whatever
        escapes, and an unforeseen error's text may quote the key, so only its class is shown.
        """
        try:
            settings = self.settings
        except HailuoAuthError:
            return False, "No API key: put the key in the connection's API key (password) field"
        except HailuoError as err:
            return False, str(err).replace(repr(self.hailuo_conn_id), "this connection")
        except Exception as err:
            return False, f"The connection could not be read ({type(err).__name__})"
        try:
            self.get_task_result("airflow-connection-test", attempts=1, timeout=CONNECTION_TEST_TIMEOUT)
        except HailuoAuthError as err:
            answer = f"HTTP {err.status}" if err.code is None else f"status_code {err.code}"
            return False, f"{settings.base_url} refused the API key ({answer})"
        except HailuoNotFoundError as err:
            if err.reason.upper() == "NOT_FOUND":  # the route, not the task: a path after the host
                return False, (
                    f"{settings.base_url} answered HTTP {err.status} {err.reason} for the API's path: "
                    "the Base URL should be the host alone (no /v3/async or /v1 after it)"
                )
            return True, f"Connection OK: {settings.base_url} accepted the API key"
        except (HailuoAPIError, HailuoMalformedAnswerError) as err:
            return False, self._not_like_the_api(settings.base_url, err)
        except HailuoTransportError as err:
            cause = err.__cause__ or err
            if err.request_sent and _is_read_timeout(cause):
                return False, f"{settings.base_url} did not answer within {CONNECTION_TEST_TIMEOUT[1]:g} s"
            return False, f"{settings.base_url} is unreachable ({type(cause).__name__})"
        except HailuoError as err:
            return False, str(err).replace(repr(self.hailuo_conn_id), "this connection")
        except Exception as err:
            return False, f"Testing {settings.base_url} failed ({type(err).__name__})"
        return True, f"Connection OK: {settings.base_url} accepted the API key"

    def _not_like_the_api(self, base_url: str, err: HailuoAPIError | HailuoMalformedAnswerError) -> str:
        """
        What a Test that reached something else says: which vendor it looks like (and how to point
        the connection at that dialect), or what kind of answer came back instead of the API's.
        """
        dialect = self.dialect
        like = err.answered_like
        if like is not None and like != dialect.family:
            names = " or ".join(f"`{name}`" for name in dialects_of_family(like))
            return (
                f"{base_url} answered like the {like} API, but this connection speaks {dialect.name}'s: "
                f"set the connection's `api` extra to {names}"
            )
        if isinstance(err, HailuoAPIError):
            what = f"HTTP {err.status}" + (f", {err.content_type}" if err.content_type else "")
            if like is None:
                return f"{base_url} answered, but not like the Hailuo API ({what}): is the URL right?"
            return f"{base_url} answered {what}: {err.reason or err.message or 'the service may be down'}"
        return f"{base_url} answered, but not like the Hailuo API: is the URL right?"


def _may_send_again_at_once(exc: BaseException) -> bool:
    return may_send_again(exc) and not refused_for_now(exc)


def _utc_now() -> str:
    """When a submit went out, as a person compares it with a vendor's console (UTC, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_read_timeout(err: BaseException) -> bool:
    import requests

    return isinstance(err, requests.exceptions.ReadTimeout)


def _is_requests_error(err: BaseException) -> bool:
    import requests

    return isinstance(err, requests.RequestException)


def _dialect_of(settings: ConnectionSettings) -> Dialect:
    return dialect_for(settings.api, settings.base_url, group_id=settings.group_id)


#: How long the triggers of one event loop share a resolved connection (a rotated key is picked up
#: by waits that start after that).
ASYNC_SETTINGS_TTL = 60.0


@dataclass(eq=False)
class _SharedSettings:
    """
    One lookup of a connection, shared by the triggers of a loop until it expires or is dropped.

    The cache is keyed weakly by its loop, and a task holds its loop: the task is let go as soon as
    it ends (its settings kept), or every loop that ever looked a connection up would stay alive.
    """

    expires: float
    lookup: asyncio.Task[ConnectionSettings] | None
    settings: ConnectionSettings | None = None

    def __post_init__(self) -> None:
        if self.lookup is not None:
            self.lookup.add_done_callback(self._ended)

    def _ended(self, lookup: asyncio.Task[ConnectionSettings]) -> None:
        if not lookup.cancelled() and lookup.exception() is None:
            self.settings = lookup.result()
        self.lookup = None

    @property
    def usable(self) -> bool:
        """Running, or done with settings: a failed lookup is not remembered."""
        return self.lookup is not None or self.settings is not None


_async_settings: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedSettings]] = (
    weakref.WeakKeyDictionary()
)


def _shared_entry(
    conn_id: str, resolve: Callable[[], Coroutine[Any, Any, ConnectionSettings]]
) -> _SharedSettings:
    """The loop's current lookup of ``conn_id``, started if there is none (or it expired or failed)."""
    loop = asyncio.get_running_loop()
    entries = _async_settings.setdefault(loop, {})
    entry = entries.get(conn_id)
    if entry is None or entry.expires < loop.time() or not entry.usable:
        entry = entries[conn_id] = _SharedSettings(
            loop.time() + ASYNC_SETTINGS_TTL, loop.create_task(resolve())
        )
    return entry


async def _await_entry(conn_id: str, entry: _SharedSettings) -> ConnectionSettings:
    if entry.settings is not None:
        return entry.settings
    assert entry.lookup is not None  # _shared_entry hands out running or successful lookups only
    try:
        return await asyncio.shield(entry.lookup)
    except Exception:
        _drop_entry(conn_id, entry)  # a failed lookup is not remembered
        raise


def _drop_entry(conn_id: str, entry: _SharedSettings) -> None:
    """Forget ``entry`` if it is still the current one; a newer lookup is left alone."""
    entries = _async_settings.get(asyncio.get_running_loop(), {})
    if entries.get(conn_id) is entry:
        del entries[conn_id]


def _env_proxy(url: str) -> tuple[str | None, Any]:
    """The HTTP(S)_PROXY / NO_PROXY answer for ``url``, as aiohttp's ``trust_env`` would give it."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), auth


def _masked_already(secret: str) -> bool:
    """
    Whether Airflow's masker already hides ``secret``: its connection lookup masks the password.

    Asking again changes nothing in the logs but one thing: Airflow 3.0 prints every mask request,
    value in clear, at DEBUG (README, "Airflow versions"). A key Airflow has not masked is still
    masked here.
    """
    from airflow.providers.common.compat.sdk import redact

    return redact(secret) != secret


def _mask(secret: str) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    if not _masked_already(secret):
        mask_secret(secret)


async def _amask(secret: str) -> None:
    """Mask without a blocking call on the loop: ``amask_secret`` where Airflow has it (3.3+)."""
    if _masked_already(secret):
        return
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.3: the synchronous call, in a thread
        from asgiref.sync import sync_to_async

        await sync_to_async(_mask)(secret)
    else:
        await amask_secret(secret)
