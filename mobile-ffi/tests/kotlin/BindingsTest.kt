// The generated Kotlin bindings on the JVM (JNA loads libyibiao_ffi.so), against a real
// yibiao-server on 127.0.0.1 and real SQLite store files: what an Android app does.
//
// Run by scripts/test-bindings.sh:
//   java -Djna.library.path=target/debug -cp ... yibiao.test.BindingsTestKt SERVER_BIN WORK_DIR
// Prints one line per test and "N passed, M failed"; exits 1 on any failure.

package yibiao.test

import java.io.File
import java.net.HttpURLConnection
import java.net.URI
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.fail
import yibiao.*

// ----- a real server -------------------------------------------------------------------

class Server(private val bin: String, private val dataDir: File) : AutoCloseable {
    private val process: Process
    val url: String

    init {
        dataDir.mkdirs()
        process = ProcessBuilder(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.path)
            .redirectErrorStream(true)
            .redirectInput(ProcessBuilder.Redirect.from(File("/dev/null")))
            .also { it.environment()["NO_COLOR"] = "1" }
            .start()
        val lines = LinkedBlockingQueue<String>()
        Thread {
            // Drains the server's output for as long as it runs (closed when it is stopped).
            try {
                process.inputStream.bufferedReader().forEachLine { lines.put(it) }
            } catch (_: java.io.IOException) {
            }
            lines.put("<eof>")
        }.apply { isDaemon = true }.start()
        var found: String? = null
        while (found == null) {
            val line = lines.poll(30, TimeUnit.SECONDS) ?: fail("yibiao-server did not start in 30 s")
            if (line == "<eof>") fail("yibiao-server exited before listening")
            found = Regex("listening on (http://\\S+)").find(line)?.groupValues?.get(1)
        }
        url = found
    }

    fun cli(vararg args: String): String {
        val p = ProcessBuilder(bin, "--data-dir", dataDir.path, *args)
            .redirectErrorStream(true)
            .redirectInput(ProcessBuilder.Redirect.from(File("/dev/null")))
            .start()
        val out = p.inputStream.bufferedReader().readText()
        check(p.waitFor() == 0) { "yibiao-server ${args.joinToString(" ")} failed: $out" }
        return out
    }

    fun addCadre(id: String, name: String, village: String) {
        cli("cadre", "add", "--id", id, "--name", name, "--village", village)
    }

    fun enrolmentCode(cadre: String): String =
        Regex("code: (\\S+)").find(cli("cadre", "code", cadre))?.groupValues?.get(1) ?: fail("no code printed")

    fun departmentToken(dept: String): String =
        Regex("token \\(shown once\\): (\\S+)").find(cli("department", "token", dept))?.groupValues?.get(1)
            ?: fail("no token printed")

    /** `POST /v1/tasks` as a department (`body` is JSON); the task with its progress. */
    fun issueTask(token: String, body: String): Map<String, Any?> {
        val c = URI("$url/v1/tasks").toURL().openConnection() as HttpURLConnection
        c.requestMethod = "POST"
        c.doOutput = true
        c.setRequestProperty("Authorization", "Bearer $token")
        c.setRequestProperty("Content-Type", "application/json")
        c.outputStream.use { it.write(body.encodeToByteArray()) }
        assertEquals(201, c.responseCode, c.errorStream?.readBytes()?.decodeToString())
        @Suppress("UNCHECKED_CAST")
        return Json.parse(c.inputStream.readBytes().decodeToString()) as Map<String, Any?>
    }

    /** `POST /v1/findings/{finding}/steps` (the office's side); returns the finding. */
    fun findingStep(token: String, finding: String, body: String): Map<String, Any?> {
        val c = URI("$url/v1/findings/$finding/steps").toURL().openConnection() as HttpURLConnection
        c.requestMethod = "POST"
        c.doOutput = true
        c.setRequestProperty("Authorization", "Bearer $token")
        c.setRequestProperty("Content-Type", "application/json")
        c.outputStream.use { it.write(body.encodeToByteArray()) }
        assertEquals(200, c.responseCode, c.errorStream?.readBytes()?.decodeToString())
        @Suppress("UNCHECKED_CAST")
        return Json.parse(c.inputStream.readBytes().decodeToString()) as Map<String, Any?>
    }

    /** `GET /v1/findings/{finding}`. */
    fun finding(token: String, finding: String): Map<String, Any?> {
        val c = URI("$url/v1/findings/$finding").toURL().openConnection() as HttpURLConnection
        c.setRequestProperty("Authorization", "Bearer $token")
        assertEquals(200, c.responseCode)
        @Suppress("UNCHECKED_CAST")
        return Json.parse(c.inputStream.readBytes().decodeToString()) as Map<String, Any?>
    }

    /** `GET /v1/tasks/{task}`: the task's progress in `village`. */
    fun taskProgress(token: String, task: String, village: String): Map<String, Any?> {
        val c = URI("$url/v1/tasks/$task").toURL().openConnection() as HttpURLConnection
        c.setRequestProperty("Authorization", "Bearer $token")
        assertEquals(200, c.responseCode)
        @Suppress("UNCHECKED_CAST")
        val villages = (Json.parse(c.inputStream.readBytes().decodeToString()) as Map<String, Any?>)["villages"]
            as List<Map<String, Any?>>
        return villages.single { it["village"] == village }
    }

    /** Every record a department sees, following `next` across pages. */
    fun pull(token: String): Map<String, Map<String, Any?>> {
        val out = linkedMapOf<String, Map<String, Any?>>()
        var after: String? = null
        do {
            val c = URI("$url/v1/records?limit=2" + (after?.let { "&after=$it" } ?: "")).toURL()
                .openConnection() as HttpURLConnection
            c.setRequestProperty("Authorization", "Bearer $token")
            assertEquals(200, c.responseCode)
            @Suppress("UNCHECKED_CAST")
            val page = Json.parse(c.inputStream.readBytes().decodeToString()) as Map<String, Any?>
            @Suppress("UNCHECKED_CAST")
            for (r in page["records"] as List<Map<String, Any?>>) out[r["id"] as String] = r
            after = page["next"] as String?
        } while (after != null)
        return out
    }

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly().waitFor()
    }
}

/** A minimal JSON reader for the department pull (the JDK has none). */
object Json {
    fun parse(text: String): Any? {
        val p = P(text)
        val v = p.value()
        p.ws()
        check(p.i == text.length) { "trailing JSON at ${p.i}" }
        return v
    }

    private class P(val s: String) {
        var i = 0
        fun ws() { while (i < s.length && s[i].isWhitespace()) i++ }
        fun value(): Any? {
            ws()
            return when (val c = s[i]) {
                '{' -> {
                    i++
                    val m = linkedMapOf<String, Any?>()
                    ws()
                    if (s[i] == '}') i++ else do {
                        ws(); val k = str(); ws(); check(s[i++] == ':'); m[k] = value(); ws()
                    } while (s[i++] == ',')
                    m
                }
                '[' -> {
                    i++
                    val l = mutableListOf<Any?>()
                    ws()
                    if (s[i] == ']') i++ else do { l.add(value()); ws() } while (s[i++] == ',')
                    l
                }
                '"' -> str()
                't' -> { i += 4; true }
                'f' -> { i += 5; false }
                'n' -> { i += 4; null }
                else -> { val st = i
                    while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
                    val n = s.substring(st, i)
                    check(n.isNotEmpty()) { "bad JSON at $st: '$c'" }
                    n.toLongOrNull() ?: n.toDouble() }
            }
        }
        fun str(): String {
            check(s[i++] == '"')
            val b = StringBuilder()
            while (true) {
                val c = s[i++]
                when (c) {
                    '"' -> return b.toString()
                    '\\' -> when (val e = s[i++]) {
                        'n' -> b.append('\n'); 't' -> b.append('\t'); 'r' -> b.append('\r')
                        'b' -> b.append('\b'); 'f' -> b.append('\u000c')
                        'u' -> { b.append(s.substring(i, i + 4).toInt(16).toChar()); i += 4 }
                        else -> b.append(e)
                    }
                    else -> b.append(c)
                }
            }
        }
    }
}

// ----- app-side implementations of the foreign traits -----------------------------------

class Recorder : ChangeObserver, SyncProgressListener {
    val changed = mutableListOf<List<String>>()
    val progress = mutableListOf<SyncProgress>()
    override fun onRecordsChanged(ids: List<String>) { synchronized(this) { changed.add(ids) } }
    override fun onProgress(progress: SyncProgress) { synchronized(this) { this.progress.add(progress) } }
}

/** The app's own HTTP stack: java.net.HttpURLConnection, not the library's client. */
class UrlConnectionTransport : AppTransport {
    val requests = mutableListOf<SyncHttpRequest>()
    override fun exchange(request: SyncHttpRequest): ByteArray {
        requests.add(request)
        try {
            val c = URI(request.url).toURL().openConnection() as HttpURLConnection
            c.requestMethod = "POST"
            c.doOutput = true
            c.connectTimeout = 30_000
            c.readTimeout = 30_000
            request.headers.forEach { (k, v) -> c.setRequestProperty(k, v) }
            c.outputStream.use { it.write(request.body) }
            val status = c.responseCode
            if (status != 200) {
                val msg = c.errorStream?.readBytes()?.decodeToString() ?: ""
                throw TransportFailure.Status(status.toUShort(), msg)
            }
            return c.inputStream.use { it.readBytes() }
        } catch (e: java.io.IOException) {
            throw TransportFailure.Network(e.toString())
        }
    }
}

/** Delivers `good` exchanges; the next reaches the server but the connection drops
 *  before the answer arrives; after that the link is gone. */
class DroppingLink(private val good: Int) : AppTransport {
    private val inner = UrlConnectionTransport()
    var calls = 0
    override fun exchange(request: SyncHttpRequest): ByteArray {
        calls++
        if (calls <= good) return inner.exchange(request)
        if (calls == good + 1) {
            inner.exchange(request) // the server commits this page...
            throw TransportFailure.Network("connection reset by peer") // ...the phone never hears
        }
        throw TransportFailure.Network("network is unreachable")
    }
}

// ----- helpers ---------------------------------------------------------------------------

class Ctx(val serverBin: String, val dir: File) {
    fun server(name: String) = Server(serverBin, File(dir, name))
    fun phone(server: Server, name: String, cadre: String, cadreName: String, village: String = "tujiang"): YibiaoStore {
        server.addCadre(cadre, cadreName, village)
        val store = YibiaoStore.open(File(dir, "$name.db").path, null, cadre)
        val enrolled = store.enrol(server.url, server.enrolmentCode(cadre))
        assertEquals(cadre, enrolled.cadre)
        assertEquals(village, enrolled.village)
        return store
    }
}

fun values(store: YibiaoStore, id: String): Map<String, String> =
    store.get(id).fields.associate { it.field to it.valueJson }

fun q(s: String) = "\"$s\""

// ----- tests -------------------------------------------------------------------------------

fun twoPhonesConflictIsShownOnBothResolvedOnOneAndEveryoneAgrees(ctx: Ctx) = ctx.server("s1").use { server ->
    val a = ctx.phone(server, "a1", "amu", "阿木")
    val b = ctx.phone(server, "b1", "jike", "吉克")
    val watchA = Recorder()
    val watchB = Recorder()
    a.setObserver(watchA)
    b.setObserver(watchB)

    val id = a.create("household", "tujiang", mapOf("household_head" to q("阿木日哈"), "household_size" to "4"))
    assertEquals(listOf(id), watchA.changed.last(), "a local write tells the observer")
    val first = a.sync(watchA)
    assertTrue(first.complete)
    assertEquals(1u, first.progress.pushed)
    assertEquals(1u, a.schemaRevision())
    assertEquals(SchemaUpdate.Unchanged, first.schema)
    assertTrue(watchA.progress.isNotEmpty(), "the progress listener hears every page")
    assertEquals(listOf(id), b.sync(null).changed)
    assertEquals(listOf(id), watchB.changed.last(), "a sync that brought the record tells the observer")

    // Offline, both set the same field differently, and one other field each.
    a.setField(id, "household_size", "5")
    a.setField(id, "phone", q("13800000001"))
    b.setField(id, "household_size", "6")
    b.setField(id, "annual_income", q("12000.50"))
    assertEquals(1L, a.status().pending)
    assertEquals(1L, b.status().pending)

    a.sync(null); b.sync(null); a.sync(null)

    for (store in listOf(a, b)) {
        assertEquals(listOf("household_size"), store.get(id).conflicted)
        val conflicts = store.conflicts(id)
        assertEquals(1, conflicts.size)
        val seen = conflicts[0].values.map { Triple(it.valueJson, it.by.cadre, it.by.device) }.toSet()
        assertEquals(setOf(Triple("5", "amu", a.deviceId()), Triple("6", "jike", b.deviceId())), seen)
        assertEquals(1, conflicts[0].values.count { it.shown })
    }
    assertEquals(values(a, id), values(b, id), "both phones show the same winner meanwhile")

    val dept = server.departmentToken("public_services")
    var pulled = server.pull(dept)[id] ?: fail("the department does not see the record")
    assertEquals(true, pulled["conflicted"])
    @Suppress("UNCHECKED_CAST")
    val deptConflict = (pulled["conflicts"] as Map<String, List<Map<String, Any?>>>)["household_size"]!!
    assertEquals(setOf(5L to "amu", 6L to "jike"), deptConflict.map { it["value"] to it["cadre"] }.toSet())

    // B settles it; after another round everyone agrees.
    b.resolve(id, "household_size", "6")
    assertTrue(b.conflicts(id).isEmpty())
    b.sync(null); a.sync(null)
    for (store in listOf(a, b)) {
        assertTrue(store.conflicts(id).isEmpty())
        val st = store.status()
        assertEquals(0L, st.pending)
        assertNull(st.lastError)
        assertNotNull(st.lastSuccessMs)
        val last = store.history(id).last { e ->
            val ev = e.event
            (ev is HistoryEvent.Resolved && ev.field == "household_size") ||
                (ev is HistoryEvent.Set && ev.field == "household_size")
        }
        assertEquals("jike", last.by.cadre, "the history says who resolved it")
    }
    val expected = mapOf(
        "household_head" to q("阿木日哈"), "household_size" to "6",
        "phone" to q("13800000001"), "annual_income" to q("12000.50"),
    )
    assertEquals(expected, values(a, id))
    assertEquals(expected, values(b, id))
    pulled = server.pull(dept)[id]!!
    assertEquals(false, pulled["conflicted"])
    @Suppress("UNCHECKED_CAST")
    val v = pulled["values"] as Map<String, Any?>
    assertEquals(6L, v["household_size"])
    assertEquals("阿木日哈", v["household_head"])
    assertTrue(watchA.changed.last().contains(id), "A's UI is told the resolution arrived")
    a.close(); b.close()
}

fun aBadValueFromKotlinIsATypedExceptionWithTheFieldName(ctx: Ctx) {
    YibiaoStore.open(File(ctx.dir, "bad.db").path, null, "amu").use { store ->
        val id = store.create("household", "tujiang", mapOf("household_size" to "4"))
        for (bad in listOf(q("three"), "0", "three", "4.5")) {
            val e = assertFailsWith<YibiaoException.InvalidValue> { store.setField(id, "household_size", bad) }
            assertEquals("household_size", e.field)
            assertTrue("家庭人口数" in e.detail, e.detail)
        }
        val e = assertFailsWith<YibiaoException.InvalidValue> {
            store.create("household", "tujiang", mapOf("ethnicity" to q("martian")))
        }
        assertEquals("ethnicity", e.field)
        // The reason as data: a stable code and parameters an app can word itself.
        assertEquals("not_an_option", e.code)
        assertEquals("martian", e.params["option"])
        assertEquals("民族", e.params["field_zh"])
        assertEquals("彝族、汉族、藏族、其他", e.params["allowed_zh"])
        assertEquals("Yi, Han, Tibetan, Other", e.params["allowed_en"])
        assertEquals("「民族」没有选项“martian”；可选：彝族、汉族、藏族、其他", e.detail)
        store.setLanguage("en")
        val en = assertFailsWith<YibiaoException.InvalidValue> { store.setField(id, "household_size", "31") }
        assertEquals("above_max", en.code)
        assertEquals("30", en.params["max"])
        assertEquals("31", en.params["got"])
        assertEquals("field `household_size` (Household size) must be at most 30, got 31", en.detail)
        store.setLanguage("zh")
        // The common base class is what an app catches to show any error.
        val any: YibiaoException = assertFailsWith<YibiaoException> { store.get("not-an-id") }
        assertTrue(any is YibiaoException.InvalidInput)
        assertFailsWith<YibiaoException.NotEnrolled> { store.sync(null) }
        assertEquals(mapOf("household_size" to "4"), values(store, id), "nothing was written")
        assertEquals("amu", store.cadreId())
    }
}

fun anAppSuppliedTransportCarriesTheSync(ctx: Ctx) = ctx.server("s3").use { server ->
    val a = ctx.phone(server, "a3", "amu", "阿木")
    val b = ctx.phone(server, "b3", "jike", "吉克")
    val id = a.create("household", "tujiang", mapOf("household_size" to "3"))
    val transport = UrlConnectionTransport()
    val report = a.syncWith(transport, null)
    assertTrue(report.complete)
    assertEquals(1u, report.progress.pushed)
    val first = transport.requests.first()
    assertEquals("${server.url}/v1/sync", first.url)
    assertTrue(first.headers["Authorization"]!!.startsWith("Bearer "))
    assertEquals("application/x-yibiao-sync", first.headers["Content-Type"])
    b.syncWith(UrlConnectionTransport(), null)
    assertEquals(mapOf("household_size" to "3"), values(b, id))

    a.setCredentials(server.url, "ybd_not-a-real-token")
    val e = assertFailsWith<YibiaoException.ServerRefused> { a.syncWith(UrlConnectionTransport(), null) }
    assertEquals(401.toUShort(), e.status)
    a.close(); b.close()
}

fun aSyncCutByADroppedConnectionResumesAndConverges(ctx: Ctx) = ctx.server("s4").use { server ->
    val a = ctx.phone(server, "a4", "amu", "阿木")
    val b = ctx.phone(server, "b4", "jike", "吉克")
    // One record per page, so the cut lands mid-sync; short backoff so the test is quick.
    a.setSyncSettings(a.syncSettings().apply { pageBytes = 1u; attempts = 2u; baseDelayMs = 10uL; maxDelayMs = 20uL })
    val ids = (1..6).map { a.create("household", "tujiang", mapOf("household_size" to "$it")) }
    val listener = Recorder()

    assertFailsWith<YibiaoException.Network> { a.syncWith(DroppingLink(good = 2), listener) }
    assertEquals(listOf(1u, 2u), listener.progress.map { it.pushed }, "two pages committed before the cut")
    val st = a.status()
    assertEquals(4L, st.pending, "acknowledged pages stay acknowledged; the rest waits")
    assertTrue(st.lastError!!.contains("could not be reached"), st.lastError)

    assertTrue(a.sync(listener).complete) // the link is back
    assertEquals(0L, a.status().pending)
    assertNull(a.status().lastError)

    b.sync(null)
    assertEquals(ids.sorted(), b.query(RecordQuery(limit = 100u)).records.map { it.id }.sorted())
    ids.forEachIndexed { i, id -> assertEquals(mapOf("household_size" to "${i + 1}"), values(b, id)) }
    val pulled = server.pull(server.departmentToken("administration"))
    assertEquals(ids.sorted(), pulled.keys.sorted(), "each record once, none lost, none doubled")
    a.close(); b.close()
}

const val UNKNOWN_ID = "0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01"

fun taskCallsOnAFreshStoreAndTheirRefusals(ctx: Ctx) {
    YibiaoStore.open(File(ctx.dir, "tasks.db").path, null, "amu").use { store ->
        assertEquals(emptyList(), store.tasks())
        val calls: List<Pair<String, (String) -> Any>> = listOf(
            "task" to { id -> store.task(id) },
            "openTask" to { id -> store.openTask(id) },
            "markTaskDone" to { id -> store.markTaskDone(id, "done") },
        )
        for ((name, call) in calls) {
            val bad = assertFailsWith<YibiaoException.InvalidInput>(name) { call("not-an-id") }
            assertTrue(bad.detail.startsWith("bad task id \"not-an-id\""), "$name: ${bad.detail}")
            val unknown = assertFailsWith<YibiaoException.NotFound>(name) { call(UNKNOWN_ID) }
            assertEquals(UNKNOWN_ID, unknown.id)
            assertTrue("task $UNKNOWN_ID is not on this phone" in unknown.detail, "$name: ${unknown.detail}")
        }
        val record = store.create("household", "tujiang", mapOf("household_size" to "2"))
        val e = assertFailsWith<YibiaoException.InvalidInput> { store.openTask(record) }
        assertTrue("not a task" in e.detail, e.detail)
        assertEquals(emptyList(), store.tasks())
    }
}

fun aTaskIssuedByADepartmentReachesThePhoneAndItsReceiptsComeBack(ctx: Ctx) = ctx.server("s5").use { server ->
    val a = ctx.phone(server, "a5", "amu", "阿木")
    val record = a.create("household", "tujiang", mapOf("household_size" to "4"))
    val dept = server.departmentToken("public_services")
    val issued = server.issueTask(
        dept,
        """{"title": "明天前完成低保户核查", "form": "dibao_check", "due": "2099-12-31", "villages": ["tujiang"]}""",
    )
    val taskId = issued["task"] as String
    assertEquals("sent", server.taskProgress(dept, taskId, "tujiang")["status"])

    assertTrue(a.sync(null).complete)
    val t = a.tasks().single()
    assertEquals(taskId, t.task)
    assertEquals("明天前完成低保户核查", t.title)
    assertEquals("public_services", t.issuer)
    assertEquals(TaskStatus.NEW, t.status)
    assertEquals(0u, t.recordsComplete)
    assertEquals(1u, t.recordsTotal)
    assertEquals(listOf(record), t.incomplete)
    assertNotNull(t.receipt.deliveredMs, "delivery is receipted by the sync itself")
    assertEquals("delivered", server.taskProgress(dept, taskId, "tujiang")["status"])

    assertTrue(a.openTask(t.id))
    assertTrue(!a.openTask(t.id), "opening twice writes once")
    assertEquals(TaskStatus.OPENED, a.task(t.id).status)
    val tooLong = assertFailsWith<YibiaoException.InvalidInput> { a.markTaskDone(t.id, "字".repeat(501)) }
    assertTrue("at most 500" in tooLong.detail, tooLong.detail)
    assertNull(a.task(t.id).receipt.done, "nothing written")
    assertTrue(a.markTaskDone(t.id, "全村 12 户已核查"))
    val done = a.task(t.id)
    assertEquals(TaskStatus.DONE, done.status)
    assertEquals(TaskDoneHow.MARKED, done.receipt.done)
    assertEquals("全村 12 户已核查", done.receipt.note)

    assertTrue(a.sync(null).complete)
    val seen = server.taskProgress(dept, taskId, "tujiang")
    assertEquals("done", seen["status"])
    assertEquals("marked", seen["done_how"])
    assertEquals("全村 12 户已核查", seen["note"])
    assertEquals("amu", seen["done_by"])
    a.close()
}

class AttachmentProgressRecorder : AttachmentProgressListener {
    val seen = mutableListOf<Pair<ULong, ULong>>()
    override fun onProgress(progress: AttachmentProgress) {
        seen.add(progress.held to progress.size)
    }
}

fun aPhotoIsAttachedUploadedInChunksAndFetchedOnDemand(ctx: Ctx) = ctx.server("s6").use { server ->
    val a = ctx.phone(server, "a6", "amu", "阿木")
    val b = ctx.phone(server, "b6", "jike", "吉克")
    val id = a.create("household", "tujiang", mapOf("household_head" to q("阿木日哈")))
    val photo = byteArrayOf(0xFF.toByte(), 0xD8.toByte(), 0xFF.toByte(), 0xE0.toByte()) +
        ByteArray(70_000) { (it % 251).toByte() }
    val info = a.attach(id, "photo", photo, "image/jpeg", "院子.jpg")
    assertEquals(photo.size.toULong(), info.size)
    assertEquals(listOf(info.sha256), a.pendingAttachments().map { it.sha256 })
    assertTrue(a.sync(null).complete, "records first")
    val progress = AttachmentProgressRecorder()
    val report = a.uploadAttachments(progress)
    assertEquals(1u, report.uploaded)
    assertTrue(report.refused.isEmpty())
    assertEquals(photo.size.toULong() to photo.size.toULong(), progress.seen.last())
    assertEquals(9, progress.seen.size, "a 70 KB photo goes in 8 KiB chunks")
    assertTrue(a.pendingAttachments().isEmpty())
    b.sync(null)
    assertNull(b.localAttachment(info.sha256), "never fetched by default")
    assertTrue(photo.contentEquals(b.fetchAttachment(info.sha256)))
    a.close()
    b.close()
}

fun aFindingRecordedOnThePhoneIsHandedOverDeliveredAndResolvedOffline(ctx: Ctx) = ctx.server("s7").use { server ->
    val a = ctx.phone(server, "a7", "amu", "阿木")
    fun found(village: String) = a.recordFinding(village, FindingInput(
        category = "living_environment", description = "村口建筑垃圾未清运",
        severity = FindingSeverity.MEDIUM, photos = listOf("att-1"), record = null,
        lat = 27.7, lon = 102.3))

    val fid = found("tujiang")
    assertFailsWith<YibiaoException.InvalidInput>("another village's finding") { found("baru") }
    val f0 = a.findings().single()
    assertEquals(fid, f0.id)
    assertEquals(FindingState.FOUND, f0.state)
    assertFalse(f0.oursToResolve)
    assertTrue(a.query(RecordQuery()).records.isEmpty(), "findings are not records")
    val notYet = assertFailsWith<YibiaoException.Refused>("not handed over yet") {
        a.resolveFinding(fid, "已清运", listOf())
    }
    assertEquals("finding_forbidden", notYet.code)
    assertEquals("not_handed_to_you", notYet.params["why"])
    assertEquals("village:tujiang 不能执行「处置」：该问题没有移交给你们", notYet.detail)
    assertEquals("人居环境", f0.categoryZh)
    assertTrue(a.sync(null).complete)

    // The discipline office hands it to the village; the next sync brings it, marked
    // delivered by itself.
    val disc = server.departmentToken("discipline_inspection")
    server.findingStep(disc, fid,
        """{"hand_over": {"unit": {"village": "tujiang"}, "deadline_ms": 4102444800000}}""")
    assertTrue(a.sync(null).complete)
    val f1 = a.finding(fid)
    assertEquals(FindingState.HANDED_OVER, f1.state)
    assertTrue(f1.oursToResolve)
    assertEquals("village:tujiang", f1.unit)
    assertNotNull(f1.deliveredMs)
    assertNull(f1.openedMs)
    assertTrue(a.openFinding(fid))
    assertFalse(a.openFinding(fid), "opening twice writes once")

    // Resolved offline with a photo as evidence, then synced: the office sees it.
    val rid = a.create("household", "tujiang", mapOf("household_head" to q("阿木日哈")))
    val photo = byteArrayOf(0xFF.toByte(), 0xD8.toByte(), 0xFF.toByte(), 0xE0.toByte()) +
        ByteArray(5_000) { (it % 251).toByte() }
    val evidence = a.attach(rid, "photo", photo, "image/jpeg", "清运后.jpg")
    a.resolveFinding(fid, "已清运，见照片", listOf(evidence.sha256))
    val f2 = a.finding(fid)
    assertEquals(FindingState.RESOLVED, f2.state)
    assertEquals(listOf("hand_over", "resolve"), f2.steps.map { it.kind })
    assertEquals(mapOf("cadre" to "amu"), Json.parse(f2.steps[1].byJson))
    assertTrue(a.sync(null).complete)
    assertEquals(1u, a.uploadAttachments(null).uploaded)
    assertEquals(0L, a.status().pending)
    val seen = server.finding(disc, fid)
    @Suppress("UNCHECKED_CAST")
    val lifecycle = seen["lifecycle"] as Map<String, Any?>
    assertEquals("resolved", lifecycle["state"])
    @Suppress("UNCHECKED_CAST")
    val marks = (seen["receipts"] as Map<String, Map<String, Any?>>).values.single()
    assertEquals("amu", marks["cadre"])
    assertEquals(f2.openedMs, (marks["opened_ms"] as Number).toLong())
    a.close()
}

// ----- runner ----------------------------------------------------------------------------

fun main(args: Array<String>) {
    require(args.size == 2) { "usage: BindingsTestKt SERVER_BIN WORK_DIR" }
    val ctx = Ctx(args[0], File(args[1]).apply { mkdirs() })
    val tests: List<Pair<String, (Ctx) -> Unit>> = listOf(
        "two_phones_conflict_is_shown_on_both_resolved_on_one_and_everyone_agrees" to
            ::twoPhonesConflictIsShownOnBothResolvedOnOneAndEveryoneAgrees,
        "a_bad_value_from_kotlin_is_a_typed_exception_with_the_field_name" to
            ::aBadValueFromKotlinIsATypedExceptionWithTheFieldName,
        "an_app_supplied_transport_carries_the_sync" to ::anAppSuppliedTransportCarriesTheSync,
        "a_sync_cut_by_a_dropped_connection_resumes_and_converges" to
            ::aSyncCutByADroppedConnectionResumesAndConverges,
        "task_calls_on_a_fresh_store_and_their_refusals" to ::taskCallsOnAFreshStoreAndTheirRefusals,
        "a_task_issued_by_a_department_reaches_the_phone_and_its_receipts_come_back" to
            ::aTaskIssuedByADepartmentReachesThePhoneAndItsReceiptsComeBack,
        "a_photo_is_attached_uploaded_in_chunks_and_fetched_on_demand" to
            ::aPhotoIsAttachedUploadedInChunksAndFetchedOnDemand,
        "a_finding_recorded_on_the_phone_is_handed_over_delivered_and_resolved_offline" to
            ::aFindingRecordedOnThePhoneIsHandedOverDeliveredAndResolvedOffline,
    )
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        val started = System.nanoTime()
        try {
            test(ctx)
            passed++
            println("kotlin: $name ... ok (${(System.nanoTime() - started) / 1_000_000} ms)")
        } catch (t: Throwable) {
            failed++
            println("kotlin: $name ... FAILED")
            t.printStackTrace(System.out)
        }
    }
    println("$passed passed, $failed failed")
    System.out.flush()
    kotlin.system.exitProcess(if (failed == 0) 0 else 1)
}
