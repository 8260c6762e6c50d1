// The console's tasks, township administration and reports in a real browser (Debian's
// Chromium via playwright-core) against the real server binary, with a real phone store
// (`console_phone`) enrolling and syncing over HTTP: the township admin adds a cadre and
// sees the enrolment QR code and its 8 characters, the phone enrols with them; a clerk
// issues a task, the phone syncs and opens it, the clerk sees it delivered and opened;
// the admin revokes the phone and its next sync is refused; a leader reads the summary
// and burden charts. Run by scripts/test-console.sh after console.mjs.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { BIN, SCREENS, seeded, serve, step } from './lib.mjs';

const fx = seeded();
const PASSWORDS = { admin: 'admin-pass-2026', ps: 'minzheng-2026', leader: 'leader-pass-26' };
fx.run(['staff', 'add', 'admin', '--name', '管理员', '--role', 'admin', '--password-stdin'], `${PASSWORDS.admin}\n`);
fx.run(['staff', 'add', 'ps', '--name', '王芳', '--department', 'public_services', '--password-stdin'], `${PASSWORDS.ps}\n`);
fx.run(['staff', 'add', 'leader', '--name', '书记', '--role', 'leader', '--password-stdin'], `${PASSWORDS.leader}\n`);
const { base, signIn, close } = await serve(fx);
const store = join(fx.dir, 'phone-mose.sqlite');

/// The phone, as a process: its exit status and output.
function phone(...args) {
  const r = spawnSync(join(BIN, 'console_phone'), args, { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/// A day 30 days ahead, YYYY-MM-DD.
function dueDay() {
  return new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString().slice(0, 10);
}

let failed = false;
try {
  step('the admin adds a cadre of 巴汝村 and issues an enrolment code shown as a QR code');
  const adm = await signIn('admin', PASSWORDS.admin);
  await adm.page.goto('/admin/cadres');
  await adm.page.click('details:has(#add-cadre) > summary');
  await adm.page.fill('#add-cadre input[name=id]', 'mose');
  await adm.page.fill('#add-cadre input[name=name]', '莫色');
  await adm.page.selectOption('#add-cadre select[name=village]', 'baru');
  await adm.page.click('#add-cadre button[type=submit]');
  assert.ok((await adm.page.textContent('.notice')).includes('莫色'));
  await adm.page.click('tr[data-cadre=mose] form[action="/admin/cadres/code"] button');
  assert.equal(await adm.page.locator('#enrol-code svg').count(), 1, 'the QR code is an inline SVG');
  const code = (await adm.page.textContent('#code')).trim();
  assert.match(code, /^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$/, code);
  await adm.page.screenshot({ path: join(SCREENS, 'admin-cadres.png'), fullPage: true });

  step('the phone enrols with the 8 characters');
  const enrolled = phone('enrol', store, base, code, 'mose');
  assert.equal(enrolled.status, 0, enrolled.out);

  step('a clerk issues a task to 巴汝村');
  const ps = await signIn('ps', PASSWORDS.ps);
  await ps.page.goto('/tasks');
  await ps.page.click('details:has(#issue-task) > summary');
  await ps.page.fill('#issue-task input[name=title]', '低保核查 浏览器');
  await ps.page.selectOption('#issue-task select[name=form]', 'dibao_check');
  await ps.page.fill('#issue-task input[name=due]', dueDay());
  await ps.page.check('#issue-task input[name=village][value=baru]');
  await ps.page.fill('#issue-task textarea[name=instructions]', '逐户核对');
  await ps.page.click('#issue-task button[type=submit]');
  assert.ok((await ps.page.textContent('.notice')).includes('低保核查 浏览器'));
  const section = ps.page.locator('section.task', { hasText: '低保核查 浏览器' });
  assert.equal((await section.locator('.delivered').textContent()).trim(), '已送达 0 / 1');

  step('the phone syncs and opens it; the clerk sees delivered and opened');
  const synced = phone('sync', store, 'mose');
  assert.equal(synced.status, 0, synced.out);
  assert.match(synced.out, /tasks [1-9]/, synced.out);
  await ps.page.goto('/tasks');
  assert.equal((await section.locator('.delivered').textContent()).trim(), '已送达 1 / 1');
  assert.equal((await section.locator('.opened').textContent()).trim(), '已查看 1 / 1');
  await ps.page.screenshot({ path: join(SCREENS, 'tasks-progress.png'), fullPage: true });

  step('the admin sees the phone last synced and revokes it; its next sync is refused');
  await adm.page.goto('/admin/cadres');
  const row = adm.page.locator('#phones tr', { hasText: 'mose' });
  assert.ok(!(await row.textContent()).includes('从未'), 'a last-sync time');
  await row.locator('button').click();
  assert.ok((await adm.page.textContent('.notice')).includes('已吊销手机'));
  const refused = phone('sync', store, 'mose');
  assert.equal(refused.status, 3, `the revoked phone syncs: ${refused.out}`);
  await adm.page.goto('/admin/staff');
  const audit = await adm.page.textContent('body');
  for (const action of ['cadre_add', 'enrol_code', 'device_revoke', 'task_issue']) {
    assert.ok(audit.includes(action), `audit log: ${action}`);
  }

  step('a leader reads the summary and burden charts');
  const leader = await signIn('leader', PASSWORDS.leader);
  const summary = await leader.page.goto('/reports/summary');
  assert.equal(summary.status(), 200);
  assert.ok((await leader.page.locator('figure.chart svg rect.bar').count()) > 0, 'bars');
  assert.ok((await leader.page.locator('figure.chart svg rect.bar[width="0"]').count()) < (await leader.page.locator('figure.chart svg rect.bar').count()), 'some records complete');
  await leader.page.screenshot({ path: join(SCREENS, 'summary.png'), fullPage: true });
  const burden = await leader.page.goto('/reports/burden');
  assert.equal(burden.status(), 200);
  assert.ok(Number(await leader.page.textContent('#typed')) > 0, 'values typed by the seeded phones');
  assert.ok((await leader.page.locator('figure.chart svg rect.bar').count()) >= 2, 'bars');
  await leader.page.screenshot({ path: join(SCREENS, 'burden.png'), fullPage: true });
  for (const [who, path] of [[leader, '/reports/summary'], [leader, '/reports/burden'], [adm, '/admin/cadres']]) {
    const r = await who.context.request.get(path);
    console.log(`   console: page weight: ${path} ${(await r.body()).length} B (uncompressed)`);
  }
  const clerk = await ps.page.goto('/reports/summary');
  assert.equal(clerk.status(), 403, 'a department clerk does not read the township reports');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await close(failed);
}
if (failed) process.exit(1);
console.log('   console: all admin browser scenarios passed');
