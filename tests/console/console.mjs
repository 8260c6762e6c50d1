// The web console in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against the real `yibiao-server` binary on loopback with a temporary
// data directory (seeded by `console_seed`: real phone stores synced through the hub)
// and staff accounts made by the CLI. Run by scripts/test-console.sh; the shared parts
// (and the environment they read) are in lib.mjs.
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { SCREENS, seeded, serve, step } from './lib.mjs';

// --- the data: seeded households, then staff accounts by the CLI -------------------------
const fx = seeded();
const { run, dir } = fx;
const PASSWORDS = { admin: 'admin-pass-2026', ps: 'minzheng-2026', clinic: 'clinic-2026-x', victim: 'victim-pass-26' };
run(['staff', 'add', 'admin', '--name', '管理员', '--role', 'admin', '--password-stdin'], `${PASSWORDS.admin}\n`);
run(['staff', 'add', 'ps', '--name', '王芳', '--department', 'public_services', '--password-stdin'], `${PASSWORDS.ps}\n`);
run(['staff', 'add', 'clinic', '--name', '李医生', '--department', 'tujiang_health_station', '--password-stdin'], `${PASSWORDS.clinic}\n`);
run(['staff', 'add', 'victim', '--name', '张三', '--department', 'social_governance', '--password-stdin'], `${PASSWORDS.victim}\n`);
const generated = run(['staff', 'add', 'leader', '--name', '书记', '--role', 'leader']);
assert.match(generated, /password \(shown once\): \S{16}/, 'a generated password is printed once');

// --- the server on a free port, the browser ----------------------------------------------
const { signIn, close } = await serve(fx);

/** The bytes of one entry of a zip (stored or deflated, sizes in the local header). */
function zipEntry(zip, name) {
  for (let at = 0; at + 30 <= zip.length; ) {
    if (zip.readUInt32LE(at) !== 0x04034b50) break;
    const method = zip.readUInt16LE(at + 8);
    const size = zip.readUInt32LE(at + 18);
    const nameLen = zip.readUInt16LE(at + 26);
    const extraLen = zip.readUInt16LE(at + 28);
    const entry = zip.subarray(at + 30, at + 30 + nameLen).toString('utf8');
    const start = at + 30 + nameLen + extraLen;
    const body = zip.subarray(start, start + size);
    if (entry === name) return (method === 8 ? inflateRawSync(body) : body).toString('utf8');
    at = start + size;
  }
  throw new Error(`no ${name} in the zip`);
}

let failed = false;
try {
  // 1. A public_services clerk signs in, filters to one village, opens the conflicted
  //    record and sees both values with who typed them, on which phone.
  step('a public_services clerk filters to 土匠村 and opens the conflict');
  const { context: ps, page } = await signIn('ps', PASSWORDS.ps);
  assert.match(page.url(), /\/records$/);
  await page.selectOption('select[name=village]', 'tujiang');
  await page.click('form.filters button[type=submit]');
  assert.equal(await page.textContent('#total'), '2');
  const table = await page.textContent('table.records');
  assert.ok(table.includes('阿木日哈') && table.includes('吉巴'), table);
  assert.ok(!table.includes('阿嘎'), 'a household of 巴汝村 is not in 土匠村');
  assert.ok(table.includes('低保户'), 'option labels, not keys');
  assert.ok(!table.includes('enrolled'), 'no option keys');
  await page.screenshot({ path: join(SCREENS, 'records.png') });
  await page.check('input[name=conflicted]');
  await page.click('form.filters button[type=submit]');
  assert.equal(await page.textContent('#total'), '1');
  await page.click('table.records a');
  const record = await page.textContent('main');
  for (const who of ['阿木 (amu)', '吉克 (jike)', '阿木的手机', '吉克的手机']) {
    assert.ok(record.includes(who), `the record page names ${who}`);
  }
  const competing = await page.locator('ul.competing li strong').allTextContents();
  assert.deepEqual(competing.sort(), ['6', '7']);
  await page.screenshot({ path: join(SCREENS, 'record-conflict.png') });
  const recordUrl = page.url();

  // The household's photo: a thumbnail the browser loads, linking to the photo, both
  // through the clerk's session (no token in any URL).
  step("the record page shows the household's photo as a thumbnail that loads");
  const thumb = page.locator('a.attachment img.thumb');
  assert.equal(await thumb.count(), 1, 'one photo on the page');
  await thumb.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector('img.thumb')?.complete);
  const [natural, shown] = await thumb.evaluate((img) => [[img.naturalWidth, img.naturalHeight], img.getAttribute('src')]);
  assert.deepEqual(natural, [320, 240], `the thumbnail decoded at 320 x 240, got ${natural}`);
  assert.match(shown, /^\/records\/[0-9a-f-]{36}\/attachments\/[0-9a-f]{64}\/thumbnail$/);
  const href = await page.getAttribute('a.attachment', 'href');
  const full = await ps.request.get(href);
  assert.equal(full.status(), 200);
  assert.equal(full.headers()['content-type'], 'image/png');
  assert.ok((await full.body()).length > 10000, 'the photo itself');
  await page.screenshot({ path: join(SCREENS, 'record-photo.png'), fullPage: true });

  // The Excel download of 土匠村: ID and phone numbers intact as text, Chinese headers,
  // option labels (read from the workbook's XML; an XLSX is a zip).
  step('the clerk downloads the XLSX of 土匠村 and the file is right');
  await page.goto('/records?village=tujiang');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-xlsx')]);
  const file = join(dir, 'records.xlsx');
  await download.saveAs(file);
  const sheet = zipEntry(readFileSync(file), 'xl/worksheets/sheet1.xml');
  const cells = [...sheet.matchAll(/<c r="([A-Z]+)(\d+)"([^>]*)>(.*?)<\/c>/g)];
  const textOf = (v) => cells.filter((c) => c[4].includes(`<t>${v}</t>`) || c[4].includes(`<t xml:space="preserve">${v}</t>`));
  for (const v of ['513401198505052226', '13800001111', '身份证号', '户主姓名', '低保户']) {
    const hit = textOf(v);
    assert.ok(hit.length > 0, `the workbook holds ${v}`);
    assert.ok(hit.every((c) => c[3].includes('t="inlineStr"') || c[3].includes('t="s"')), `${v} is a text cell`);
  }
  assert.ok(!sheet.includes('enrolled'), 'option labels, not keys');

  // The task list: progress per village, delivered where a phone synced.
  step('the task list shows progress per village');
  await page.goto('/tasks');
  const tasks = await page.textContent('main');
  assert.ok(tasks.includes('低保户年度核查') && tasks.includes('土匠村') && tasks.includes('巴汝村'), tasks);
  assert.match(tasks, /已送达 [1-9] \/ 2/, 'a phone of 土匠村 received the task');
  await page.screenshot({ path: join(SCREENS, 'tasks.png') });

  // 2. A department never sees another department's fields (nor their option labels).
  step("no other department's fields on any page");
  for (const url of ['/records', '/records?village=tujiang', '/tasks', recordUrl]) {
    await page.goto(url);
    const text = await page.textContent('body');
    for (const hidden of ['厕所类型', '水冲式', '防返贫监测状态', '边缘易致贫']) {
      assert.ok(!text.includes(hidden), `${url} shows ${hidden}`);
    }
  }
  const clinic = await signIn('clinic', PASSWORDS.clinic);
  await clinic.page.goto('/records');
  const clinicText = await clinic.page.textContent('body');
  assert.ok(clinicText.includes('阿木日哈'), 'the clinic reads 土匠村 households');
  for (const hidden of ['身份证号', '513401198505052226', '低保状态', '低保户', '阿嘎', '巴汝村']) {
    assert.ok(!clinicText.includes(hidden), `the clinic sees ${hidden}`);
  }
  await clinic.page.goto('/tasks');
  assert.ok(!(await clinic.page.textContent('main')).includes('低保户年度核查'), "another department's task");
  const other = await clinic.page.goto('/records?village=baru');
  assert.equal(other.status(), 403, 'a village outside the view is refused');
  // The clinic reads the household but not its photo: no thumbnail, the link is 404.
  await clinic.page.goto(recordUrl);
  assert.equal(await clinic.page.locator('img.thumb').count(), 0, 'no photo for the clinic');
  assert.equal((await clinic.context.request.get(href)).status(), 404);
  assert.equal((await clinic.context.request.get(href + '/thumbnail')).status(), 404);

  // 3. A clerk cannot reach admin pages.
  step('a clerk is refused the admin pages');
  const admin = await page.goto('/admin/staff');
  assert.equal(admin.status(), 403);
  assert.ok((await page.textContent('body')).includes('镇管理员'));

  // 4. A form posted without the session's CSRF token is refused (and changes nothing).
  step('forms without the CSRF token are refused');
  for (const path of ['/logout', '/account/password', '/admin/staff/reset']) {
    const r = await ps.request.post(path, { form: { current: PASSWORDS.ps, new: 'x'.repeat(12), login: 'admin' }, maxRedirects: 0 });
    assert.equal(r.status(), 403, `${path} without a token`);
  }
  const still = await page.goto('/records');
  assert.equal(still.status(), 200, 'the session survived the forged sign-out');

  // 5. Wrong passwords lock the account; then even the right one is refused, saying so.
  step('wrong passwords lock out');
  for (let i = 0; i < 5; i++) {
    const { context, page: p } = await signIn('victim', 'wrong-password');
    assert.ok((await p.textContent('.error')).includes('账号或密码不正确'));
    await context.close();
  }
  const locked = await signIn('victim', PASSWORDS.victim);
  assert.ok((await locked.page.textContent('.error')).includes('锁定'));
  await locked.page.screenshot({ path: join(SCREENS, 'login-locked.png') });
  assert.match(locked.page.url(), /\/login$/);

  // 6. The admin sees staff accounts and the audit log; English on request.
  step('the admin reads the staff page, in English too');
  const adm = await signIn('admin', PASSWORDS.admin);
  await adm.page.goto('/admin/staff');
  const audit = await adm.page.textContent('body');
  assert.ok(audit.includes('sign_in_locked') && audit.includes('victim'), 'the lockout is in the audit log');
  await adm.page.goto('/records?lang=en');
  assert.ok((await adm.page.textContent('header')).includes('Records'));
  await adm.page.goto('/records');
  assert.ok((await adm.page.textContent('header')).includes('Records'), 'the language is remembered');
  await adm.page.screenshot({ path: join(SCREENS, 'records-admin-en.png') });

  // 7. The township office resolves the conflict; the record shows one value and the
  //    history marks the resolution.
  step('the township admin resolves the conflict on the record page');
  await adm.page.goto(recordUrl + '?lang=zh');
  await adm.page.check('form.resolve input[name=pick] >> nth=0');
  await adm.page.click('form.resolve button[type=submit]');
  assert.equal(await adm.page.locator('ul.competing li').count(), 0, 'one value left');
  assert.ok((await adm.page.textContent('table.history')).includes('冲突已处理'), 'the history marks it');
  await adm.page.screenshot({ path: join(SCREENS, 'record-history.png'), fullPage: true });

  // 8. A finding through its steps: the township records and hands it over naming
  //    nothing (the category's unit and deadline), the department it went to resolves.
  step('the township records a finding, hands it over by its category, the department resolves it');
  await adm.page.goto('/findings');
  await adm.page.click('details.card summary');
  await adm.page.selectOption('#record-finding select[name=category]', 'livelihood_funds');
  await adm.page.selectOption('#record-finding select[name=village]', 'tujiang');
  await adm.page.fill('#record-finding textarea[name=description]', '上月低保发放未公示');
  await adm.page.click('#record-finding button[type=submit]');
  assert.ok((await adm.page.textContent('h1')).includes('民生资金'), 'the category label');
  await adm.page.click('#hand-over button[type=submit]');
  assert.equal((await adm.page.textContent('#unit')).trim(), '公共服务办公室(民政)');
  const findingUrl = adm.page.url().replace(/\/steps$/, '');
  await page.goto('/findings');
  await page.click('#findings a');
  await page.fill('#resolve textarea[name=note]', '已补发并公示');
  await page.click('#resolve button[type=submit]');
  assert.equal(await page.getAttribute('#state', 'data-state'), 'resolved');
  assert.equal((await page.textContent('#state')).trim(), '已处置');
  await adm.page.goto(findingUrl);
  assert.equal(await adm.page.locator('#log tbody tr').count(), 2, 'hand-over and resolution');
  await adm.page.screenshot({ path: join(SCREENS, 'finding.png'), fullPage: true });

  // Page weight: the records page and its stylesheet, as sent.
  const html = await ps.request.get('/records');
  const css = await ps.request.get('/console/style.css');
  console.log(`   console: page weight: /records ${(await html.body()).length} B + style.css ${(await css.body()).length} B (uncompressed)`);
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await close(failed);
}
if (failed) process.exit(1);
console.log('   console: all browser scenarios passed');
