"""The generated Python bindings, loaded by CPython, against a real yibiao-server on
127.0.0.1 and real SQLite store files: what a phone app does, end to end."""

import json
import urllib.error
import urllib.request

import pytest

import yibiao
from conftest import Recorder, fast_retries


def values(store, rid):
    return {f.field: json.loads(f.value_json) for f in store.get(rid).fields}


def test_two_phones_conflict_is_shown_on_both_resolved_on_one_and_everyone_agrees(server, phone):
    a = phone("a", "amu", "阿木")
    b = phone("b", "jike", "吉克")
    watch_a, watch_b = Recorder(), Recorder()
    a.set_observer(watch_a)
    b.set_observer(watch_b)

    rid = a.create("household", "tujiang", {
        "household_head": json.dumps("阿木日哈"),
        "household_size": "4",
    })
    assert watch_a.changed[-1] == [rid], "a local write tells the observer"
    report = a.sync(watch_a)
    assert report.complete and report.progress.pushed == 1
    # The schema: the revision the phone holds, and no news (the server holds the same).
    assert a.schema_revision() == 1 and report.schema == yibiao.SchemaUpdate.UNCHANGED()
    assert watch_a.progress, "the progress listener hears every page"
    report = b.sync(None)
    assert report.changed == [rid]
    assert watch_b.changed[-1] == [rid], "a sync that brought the record tells the observer"

    # Offline, both set the same field differently (and one other field each).
    a.set_field(rid, "household_size", "5")
    a.set_field(rid, "phone", json.dumps("13800000001"))
    b.set_field(rid, "household_size", "6")
    b.set_field(rid, "annual_income", json.dumps("12000.50"))
    assert a.status().pending == 1 and b.status().pending == 1

    a.sync(None)
    b.sync(None)
    a.sync(None)

    for store in (a, b):
        assert store.get(rid).conflicted == ["household_size"]
        [conflict] = store.conflicts(rid)
        assert conflict.field == "household_size"
        seen = {(json.loads(v.value_json), v.by.cadre, v.by.device) for v in conflict.values}
        assert seen == {(5, "amu", a.device_id()), (6, "jike", b.device_id())}
        assert sum(v.shown for v in conflict.values) == 1
    assert values(a, rid) == values(b, rid), "both phones show the same winner meanwhile"

    dept = server.department_token("public_services")
    pulled = server.pull(dept)[rid]
    assert pulled["conflicted"] is True
    assert {(c["value"], c["cadre"]) for c in pulled["conflicts"]["household_size"]} == {
        (5, "amu"), (6, "jike")}

    # B settles it; after another round everyone agrees.
    b.resolve(rid, "household_size", "6")
    assert b.conflicts(rid) == []
    b.sync(None)
    a.sync(None)
    for store in (a, b):
        assert store.conflicts(rid) == []
        assert store.status().pending == 0
        assert store.status().last_error is None
        assert store.status().last_success_ms is not None
        resolved = [h for h in store.history(rid) if isinstance(h.event, yibiao.HistoryEvent.RESOLVED)]
        assert resolved and resolved[-1].by.cadre == "jike"
        assert resolved[-1].event.field == "household_size"
    assert values(a, rid) == values(b, rid) == {
        "household_head": "阿木日哈", "phone": "13800000001", "household_size": 6,
        "annual_income": "12000.50",  # the field keeps its 2 decimals
    }
    pulled = server.pull(dept)[rid]
    assert pulled["conflicted"] is False and pulled["conflicts"] == {}
    assert pulled["values"]["household_size"] == 6
    assert pulled["values"]["household_head"] == "阿木日哈"
    assert rid in watch_a.changed[-1], "A's UI is told the resolution arrived"


def test_a_bad_value_is_a_typed_error_naming_the_field_and_nothing_is_written(tmp_path):
    store = yibiao.YibiaoStore.open(str(tmp_path / "p.db"), None, "amu")
    rid = store.create("household", "tujiang", {"household_size": "4"})
    for bad in ['"three"', "0", "three", "4.5"]:
        with pytest.raises(yibiao.YibiaoError.InvalidValue) as e:
            store.set_field(rid, "household_size", bad)
        assert e.value.field == "household_size"
        assert "家庭人口数" in e.value.detail
    with pytest.raises(yibiao.YibiaoError.InvalidValue) as e:
        store.create("household", "tujiang", {"ethnicity": '"martian"'})
    assert e.value.field == "ethnicity"
    # The reason as data: a stable code and parameters an app can word itself.
    assert e.value.code == "not_an_option"
    assert e.value.params["option"] == "martian"
    assert e.value.params["field_zh"] == "民族" and e.value.params["field_en"] == "Ethnicity"
    assert e.value.params["allowed_zh"] == "彝族、汉族、藏族、其他"
    assert e.value.params["allowed"] == "yi,han,tibetan,other"
    assert e.value.detail == "「民族」没有选项“martian”；可选：彝族、汉族、藏族、其他"
    # English on request; the code and parameters do not change.
    store.set_language("en")
    with pytest.raises(yibiao.YibiaoError.InvalidValue) as e:
        store.set_field(rid, "id_number", json.dumps("513401198505052222"))
    assert e.value.code == "bad_id_number" and e.value.params["problem"] == "check_digit"
    assert e.value.detail == (
        "field `id_number` (Resident ID number) has a wrong check digit; check the number digit by digit")
    assert "513401198505052222" not in str(e.value.params), "an ID number is never echoed"
    store.set_language("zh")
    assert values(store, rid) == {"household_size": 4}
    assert store.status().pending == 1

    with pytest.raises(yibiao.YibiaoError.NotFound):
        store.get("0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01")
    with pytest.raises(yibiao.YibiaoError.InvalidInput):
        store.get("not-an-id")
    with pytest.raises(yibiao.YibiaoError.InvalidInput):
        store.create("spaceship", None, {})
    with pytest.raises(yibiao.YibiaoError.NotEnrolled):
        store.sync(None)
    with pytest.raises(yibiao.YibiaoError.InvalidInput):
        yibiao.YibiaoStore.open(str(tmp_path / "q.db"), "format = 1\nname = ", "amu")


def test_records_query_paging_form_status_delete_and_history(tmp_path):
    store = yibiao.YibiaoStore.open(str(tmp_path / "p.db"), None, "amu")
    ids = [store.create("household", "tujiang", {"household_head": json.dumps(f"户{i}"),
                                                  "household_size": str(i + 1)})
           for i in range(5)]
    page = store.query(yibiao.RecordQuery(entity="household", limit=2))
    assert [r.id for r in page.records] == ids[:2] and page.next == ids[1]
    rest = store.query(yibiao.RecordQuery(entity="household", after=page.next, limit=10))
    assert [r.id for r in rest.records] == ids[2:] and rest.next is None
    [hit] = store.query(yibiao.RecordQuery(equals={"household_size": "3"})).records
    assert hit.id == ids[2] and json.loads(hit.values["household_head"]) == "户2"

    status = store.form_status(ids[0], "dibao_check")
    assert not status.complete and "annual_income" in status.missing_required

    assert store.delete(ids[0])
    assert store.get(ids[0]).deleted
    with pytest.raises(yibiao.YibiaoError.RecordDeleted):
        store.set_field(ids[0], "household_size", "2")
    assert len(store.query(yibiao.RecordQuery()).records) == 4
    assert store.restore(ids[0])
    assert store.unset_field(ids[0], "household_size")
    kinds = [type(h.event).__name__.rsplit(".", 1)[-1] for h in store.history(ids[0])]
    assert kinds == ["CREATED", "SET", "SET", "DELETED", "RESTORED", "UNSET"], kinds
    assert all(h.by.cadre == "amu" and h.by.device == store.device_id() for h in store.history(ids[0]))


class UrllibTransport(yibiao.AppTransport):
    """An app's own HTTP stack: urllib, not the library's built-in client."""

    def __init__(self):
        self.requests = []

    def exchange(self, request):
        self.requests.append(request)
        req = urllib.request.Request(request.url, data=bytes(request.body),
                                     headers=dict(request.headers), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise yibiao.TransportFailure.Status(e.code, e.read().decode(errors="replace"))
        except OSError as e:
            raise yibiao.TransportFailure.Network(str(e))


def test_an_app_supplied_transport_carries_the_sync(server, phone):
    a = phone("a", "amu", "阿木")
    b = phone("b", "jike", "吉克")
    rid = a.create("household", "tujiang", {"household_size": "3"})
    transport = UrllibTransport()
    report = a.sync_with(transport, None)
    assert report.complete and report.progress.pushed == 1
    assert transport.requests, "the app's transport carried the exchange"
    first = transport.requests[0]
    assert first.url == f"{server.url}/v1/sync"
    assert first.headers["Authorization"].startswith("Bearer ")
    assert first.headers["Content-Type"] == "application/x-yibiao-sync"
    b.sync_with(UrllibTransport(), None)
    assert values(b, rid) == {"household_size": 3}

    # A status error the app reports ends the sync with the server's refusal.
    a.set_credentials(server.url, "ybd_not-a-real-token")
    with pytest.raises(yibiao.YibiaoError.ServerRefused) as e:
        a.sync_with(UrllibTransport(), None)
    assert e.value.status == 401


class DroppingLink(yibiao.AppTransport):
    """Delivers `good` exchanges; the next one reaches the server but the connection drops
    before the answer arrives; after that the link is gone."""

    def __init__(self, good):
        self.inner = UrllibTransport()
        self.good = good
        self.calls = 0

    def exchange(self, request):
        self.calls += 1
        if self.calls <= self.good:
            return self.inner.exchange(request)
        if self.calls == self.good + 1:
            self.inner.exchange(request)  # the server commits this page...
            raise yibiao.TransportFailure.Network("connection reset by peer")  # ...the phone never hears
        raise yibiao.TransportFailure.Network("network is unreachable")


def test_a_sync_cut_by_a_dropped_connection_resumes_and_converges(server, phone):
    a = phone("a", "amu", "阿木")
    b = phone("b", "jike", "吉克")
    fast_retries(a, page_bytes=1)  # one record per page: the cut lands mid-sync
    ids = [a.create("household", "tujiang", {"household_size": str(i + 1)}) for i in range(6)]
    listener = Recorder()

    with pytest.raises(yibiao.YibiaoError.Network):
        a.sync_with(DroppingLink(good=2), listener)
    assert [p.pushed for p in listener.progress] == [1, 2], "two pages committed before the cut"
    status = a.status()
    assert status.pending == 4, "acknowledged pages stay acknowledged; the rest waits"
    assert status.last_error and "could not be reached" in status.last_error

    report = a.sync(listener)  # the link is back
    assert report.complete
    assert a.status().pending == 0 and a.status().last_error is None

    b.sync(None)
    assert sorted(r.id for r in b.query(yibiao.RecordQuery(limit=100)).records) == sorted(ids)
    for i, rid in enumerate(ids):
        assert values(b, rid) == {"household_size": i + 1}
    pulled = server.pull(server.department_token("administration"))
    assert sorted(pulled) == sorted(ids), "each record once, none lost, none doubled"


def test_a_throwing_observer_does_not_fail_the_write(tmp_path):
    class Broken(yibiao.ChangeObserver):
        def on_records_changed(self, ids):
            raise RuntimeError("the UI crashed")

    store = yibiao.YibiaoStore.open(str(tmp_path / "p.db"), None, "amu")
    store.set_observer(Broken())
    rid = store.create("household", "tujiang", {"household_size": "2"})
    assert values(store, rid) == {"household_size": 2}


def test_an_unexpected_exception_in_the_apps_transport_is_a_network_error_not_a_crash(server, phone):
    class Crashing(yibiao.AppTransport):
        def exchange(self, request):
            raise ValueError("bug in the app's HTTP code")

    a = phone("a", "amu", "阿木")
    fast_retries(a)
    a.create("household", "tujiang", {"household_size": "2"})
    with pytest.raises(yibiao.YibiaoError.Network) as e:
        a.sync_with(Crashing(), None)
    assert "bug in the app's HTTP code" in e.value.detail
    assert a.status().pending == 1
    assert a.sync(None).complete, "the built-in transport still works afterwards"


UNKNOWN_ID = "0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01"


def test_task_calls_on_a_fresh_store_and_their_refusals(tmp_path):
    store = yibiao.YibiaoStore.open(str(tmp_path / "p.db"), None, "amu")
    assert store.tasks() == []
    calls = {
        "task": store.task,
        "open_task": store.open_task,
        "mark_task_done": lambda i: store.mark_task_done(i, "done"),
    }
    for name, call in calls.items():
        with pytest.raises(yibiao.YibiaoError.InvalidInput) as e:
            call("not-an-id")
        assert e.value.detail.startswith('bad task id "not-an-id"'), (name, e.value.detail)
        with pytest.raises(yibiao.YibiaoError.NotFound) as e:
            call(UNKNOWN_ID)
        assert e.value.id == UNKNOWN_ID
        assert f"task {UNKNOWN_ID} is not on this phone" in e.value.detail, (name, e.value.detail)
    rid = store.create("household", "tujiang", {"household_size": "2"})
    with pytest.raises(yibiao.YibiaoError.InvalidInput) as e:
        store.open_task(rid)
    assert "not a task" in e.value.detail
    assert store.tasks() == []


def test_a_task_issued_by_a_department_reaches_the_phone_and_its_receipts_come_back(server, phone):
    a = phone("a", "amu", "阿木")
    rid = a.create("household", "tujiang", {"household_size": "4"})
    dept = server.department_token("public_services")
    issued = server.issue_task(dept, {
        "title": "明天前完成低保户核查", "instructions": "逐户核对收入和人口",
        "form": "dibao_check", "due": "2099-12-31", "villages": ["tujiang"],
    })
    assert server.task_progress(dept, issued["task"], "tujiang")["status"] == "sent"

    watch = Recorder()
    a.set_observer(watch)
    assert a.sync(None).complete
    [t] = a.tasks()
    assert t.task == issued["task"] and t.title == "明天前完成低保户核查"
    assert t.form == "dibao_check" and t.issuer == "public_services" and t.village == "tujiang"
    assert t.due == "2099-12-31" and t.targets is None
    assert t.status == yibiao.TaskStatus.NEW
    assert (t.records_complete, t.records_total, t.incomplete) == (0, 1, [rid])
    assert t.receipt.delivered_ms is not None and t.receipt.opened_ms is None
    assert t.id in watch.changed[-1], "the observer hears that a task arrived"
    assert [r.id for r in a.query(yibiao.RecordQuery()).records] == [rid], "tasks are not records"
    delivered = server.task_progress(dept, issued["task"], "tujiang")
    assert delivered["status"] == "delivered", "delivery is receipted by the sync itself"

    assert a.open_task(t.id)
    assert not a.open_task(t.id), "opening twice writes once"
    assert a.task(t.id).status == yibiao.TaskStatus.OPENED
    with pytest.raises(yibiao.YibiaoError.InvalidInput) as e:
        a.mark_task_done(t.id, "字" * 501)
    assert "at most 500" in e.value.detail
    assert a.task(t.id).receipt.done is None, "nothing written"
    assert a.mark_task_done(t.id, "全村 12 户已核查，2 户外出")
    done = a.task(t.id)
    assert done.status == yibiao.TaskStatus.DONE
    assert done.receipt.done == yibiao.TaskDoneHow.MARKED
    assert done.receipt.note == "全村 12 户已核查，2 户外出" and done.receipt.cadre == "amu"

    assert a.sync(None).complete and a.status().pending == 0
    seen = server.task_progress(dept, issued["task"], "tujiang")
    assert seen["status"] == "done" and seen["done_how"] == "marked"
    assert seen["note"] == "全村 12 户已核查，2 户外出" and seen["done_by"] == "amu"
    assert seen["opened_ms"] == done.receipt.opened_ms


def test_a_new_developer_session_reads_well_bare_address_defaults_scope_and_discard(server, tmp_path):
    """What an app developer meets first: the enrolment answer prints its fields, a bare
    loopback address works, `sync()` needs no arguments, the phone refuses a record
    outside its village at once, and a record the server refused can be discarded."""
    server.add_cadre("amu", "阿木", "tujiang")
    store = yibiao.YibiaoStore.open(str(tmp_path / "dev.db"), None, "amu")
    # Written before enrolment, for another village: the server will refuse it.
    stray = store.create("household", "baru", {"household_head": json.dumps("吉克")})

    with pytest.raises(yibiao.YibiaoError.InvalidInput) as bad:
        store.enrol("yibiao.example.gov.cn", server.enrolment_code("amu"))
    assert "write it as https://yibiao.example.gov.cn" in bad.value.detail
    bare = server.url.removeprefix("http://")
    enrolled = store.enrol(bare, server.enrolment_code("amu"))
    assert repr(enrolled) == (
        f"Enrolment(device='{store.device_id()}', cadre='amu', village='tujiang')")
    assert enrolled.device == store.device_id(), "one device id: the phone's own"
    assert store.server_url() == server.url

    report = store.sync()
    assert [r.id for r in report.refused] == [stray]
    assert (store.status().pending, store.status().refused) == (1, 1)
    assert "pending=1" in repr(store.status())

    with pytest.raises(yibiao.YibiaoError.InvalidInput) as out:
        store.create("household", "baru", {})
    assert out.value.detail == (
        "this phone is enrolled for village `tujiang`; it cannot write a record of village `baru`")
    mine = store.create("household", "tujiang", {})

    store.discard(stray)
    with pytest.raises(yibiao.YibiaoError.NotFound):
        store.get(stray)
    store.sync()
    assert (store.status().pending, store.status().refused) == (0, 0)
    with pytest.raises(yibiao.YibiaoError.InvalidInput):
        store.discard(mine)


class Progress(yibiao.AttachmentProgressListener):
    def __init__(self):
        self.seen = []

    def on_progress(self, progress):
        self.seen.append((progress.held, progress.size))


def test_a_photo_is_attached_uploaded_after_the_records_with_progress_and_fetched_on_demand(
    server, phone, tmp_path
):
    a = phone("a", "amu", "阿木")
    b = phone("b", "jike", "吉克")
    rid = a.create("household", "tujiang", {"household_head": json.dumps("阿木日哈")})
    photo = b"\xff\xd8\xff\xe0" + bytes(i % 251 for i in range(70_000))
    path = tmp_path / "yard.jpg"
    path.write_bytes(photo)
    info = a.attach_file(rid, "photo", str(path), "image/jpeg", "院子.jpg")
    assert info.size == len(photo) and len(info.sha256) == 64
    assert values(a, rid)["photo"]["sha256"] == info.sha256
    assert [p.sha256 for p in a.pending_attachments()] == [info.sha256]

    assert a.sync(None).complete, "records first"
    seen = Progress()
    report = a.upload_attachments(seen)
    assert (report.uploaded, report.refused, report.gave_up) == (1, [], False)
    # A 70 KB photo goes in 8 KiB chunks (a sixteenth, at least 8 KiB): 9 acknowledgements.
    assert seen.seen[-1] == (len(photo), len(photo)) and len(seen.seen) == 9, seen.seen
    assert a.pending_attachments() == []

    # The other phone of the village gets the reference by sync, the bytes only on demand.
    b.sync(None)
    assert values(b, rid)["photo"]["sha256"] == info.sha256
    assert b.local_attachment(info.sha256) is None
    assert b.fetch_attachment(info.sha256) == photo
    assert b.local_attachment(info.sha256) == photo

    # Not a photo: refused by content, with a sentence in Chinese.
    b.attach(rid, "photo", b"plain text pretending", "image/jpeg", "x.jpg")
    refused = b.upload_attachments(None).refused
    assert [r.code for r in refused] == ["blob_type_refused"]
    assert "附件类型不被接受" in refused[0].detail


def test_a_finding_recorded_on_the_phone_is_handed_over_delivered_and_resolved_offline(server, phone):
    a = phone("a", "amu", "阿木")

    def found(village):
        return a.record_finding(village, yibiao.FindingInput(
            category="living_environment", description="村口建筑垃圾未清运",
            severity=yibiao.FindingSeverity.MEDIUM, photos=["att-1"], record=None,
            lat=27.7, lon=102.3))

    fid = found("tujiang")
    with pytest.raises(yibiao.YibiaoError.InvalidInput):
        found("baru")
    [f] = a.findings()
    assert f.id == fid and f.state == yibiao.FindingState.FOUND and not f.ours_to_resolve
    assert [r.id for r in a.query(yibiao.RecordQuery()).records] == [], "findings are not records"
    with pytest.raises(yibiao.YibiaoError.Refused) as e:
        a.resolve_finding(fid, "已清运", [])
    assert e.value.code == "finding_forbidden" and e.value.params["why"] == "not_handed_to_you"
    assert e.value.detail == "village:tujiang 不能执行「处置」：该问题没有移交给你们", e.value.detail
    with pytest.raises(yibiao.YibiaoError.Refused) as e:
        a.record_finding("tujiang", yibiao.FindingInput(
            category="dust", description="扬尘", severity=yibiao.FindingSeverity.LOW,
            photos=[], record=None, lat=None, lon=None))
    assert e.value.code == "unknown_category" and "人居环境 (living_environment)" in e.value.detail
    assert f.category_zh == "人居环境"
    assert a.sync(None).complete

    # The discipline office hands it over naming neither unit nor deadline: the
    # category's (the village, 7 days) are written; the next sync brings it and marks
    # it delivered by itself.
    disc = server.department_token("discipline_inspection")
    server.finding_step(disc, fid, {"hand_over": {}})
    assert a.sync(None).complete
    f = a.finding(fid)
    assert f.state == yibiao.FindingState.HANDED_OVER and f.ours_to_resolve
    assert f.deadline_ms - f.steps[0].at_ms == 7 * 24 * 3600 * 1000
    assert f.unit == "village:tujiang" and f.delivered_ms is not None and f.opened_ms is None
    assert a.open_finding(fid)
    assert not a.open_finding(fid), "opening twice writes once"

    # Resolved offline, then synced: the office sees the resolution and the marks.
    a.resolve_finding(fid, "已清运，见照片", ["att-2"])
    f = a.finding(fid)
    assert f.state == yibiao.FindingState.RESOLVED
    assert [s.kind for s in f.steps] == ["hand_over", "resolve"]
    assert json.loads(f.steps[1].by_json) == {"cadre": "amu"}
    assert a.sync(None).complete and a.status().pending == 0
    seen = server.finding(disc, fid)
    assert seen["lifecycle"]["state"] == "resolved"
    [marks] = seen["receipts"].values()
    assert marks["opened_ms"] == f.opened_ms and marks["cadre"] == "amu"


def test_a_county_server_on_tls_with_its_own_ca_is_trusted_only_when_the_app_pins_it(tmp_path):
    """`serve --tls-cert --tls-key` with a certificate of the county's own CA: the public
    roots refuse it; the pinned CA enrols, syncs and uploads; bad PEM text changes
    nothing."""
    import subprocess
    from conftest import Server

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       stdin=subprocess.DEVNULL, cwd=tmp_path)

    # The county's CA, and the server's certificate signed by it.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=Test County CA", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    (tmp_path / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    cert, key = tmp_path / "ca.pem", tmp_path / "server.key"
    server = Server(tmp_path / "server").start(tls=(tmp_path / "server.pem", key))
    try:
        assert server.url.startswith("https://")
        server.add_cadre("amu", "阿木", "tujiang")
        store = yibiao.YibiaoStore.open(str(tmp_path / "phone.db"), None, "amu")
        with pytest.raises(yibiao.YibiaoError.Network):
            store.enrol(server.url, server.enrolment_code("amu"))
        with pytest.raises(yibiao.YibiaoError.InvalidInput) as e:
            store.set_trusted_ca("not a certificate")
        assert "PEM" in str(e.value)
        store.set_trusted_ca(cert.read_text())
        enrolled = store.enrol(server.url, server.enrolment_code("amu"))
        assert enrolled.village == "tujiang"
        rid = store.create("household", "tujiang", {"household_head": "\"阿木\""})
        photo = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
        store.attach(rid, "photo", photo, "image/jpeg", "院子.jpg")
        report = store.sync()
        assert report.complete and report.progress.pushed >= 1
        uploaded = store.upload_attachments()
        assert uploaded.uploaded == 1
        # Back to the public roots: the county's certificate is refused again.
        store.set_trusted_ca(None)
        with pytest.raises(yibiao.YibiaoError.Network):
            store.sync()
    finally:
        server.stop()
