// The service and Home screens in the browser, as webapp.mjs's signed-in zh-CN page uses them:
// a ticket created through the form opens in its workspace; a public reply and an internal
// note (shown apart), an attachment uploaded, the status moved with the buttons the workflow
// allows, the SLA countdown read; the queues; a task due today made through the API seen on
// Home; an approval requested through the API approved from the inbox; the notification bell
// read. Screenshots of the workspace, the queue, Home and the inbox in both languages and at
// phone width. Everything seen goes into `seen`; the page ends in zh-CN at 1366 px.

/** Calls the API from the page with its cookie session and CSRF token, as the app does. */
async function apiFromPage(page, method, path, body) {
  return page.evaluate(async ({ method, path, body }) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('crm_csrf='))?.slice(9) ?? '';
    const r = await fetch(`/api/v1${path}`, {
      method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, { method, path, body });
}

const text = async (locator) => (await locator.textContent())?.trim();

/** Waits until the "saved" toasts are gone, so that they do not cover a screenshot. */
const quiet = (page) => page.locator('.ant-message-notice').first().waitFor({ state: 'detached' });

export async function ticketsFlow(page, { shot, settle, chooseLanguage }, seen) {
  const me = (await apiFromPage(page, 'GET', '/me')).body.user.id;

  // A new ticket through the generic form: it opens in the workspace, not the generic detail.
  await page.getByRole('menuitem', { name: '工单' }).click();
  await page.getByTestId('ticket-new').click();
  await page.getByTestId('record-form').waitFor();
  await page.getByLabel('主题', { exact: true }).fill('车辆保养预约改期');
  await page.getByTestId('record-save').click();
  await page.getByTestId('composer').waitFor();
  seen.ticketPath = new URL(page.url()).pathname.replace(/[0-9a-f-]{36}$/, ':id');
  const ticketId = new URL(page.url()).pathname.split('/').pop();
  seen.ticketSlaBefore = await text(page.getByTestId('sla-first-response'));

  // A public reply, then an internal note: different cards, the note says so with a lock.
  await page.getByTestId('composer-body').fill('您好，已为您改到周六上午十点。');
  await page.getByTestId('composer-send').click();
  await page.getByTestId('reply').filter({ hasText: '已为您改到周六' }).waitFor();
  await page.getByTestId('composer-kind').getByText('内部备注').click();
  await page.getByTestId('composer-body').fill('客户只在周末有空。');
  await page.getByTestId('composer-send').click();
  const note = page.getByTestId('note').filter({ hasText: '客户只在周末有空' });
  await note.waitFor();
  seen.noteLabel = await text(note.locator('.ant-tag'));
  seen.noteBackground = await note.evaluate((el) => getComputedStyle(el).backgroundColor);
  seen.replyBackground = await page.getByTestId('reply').first().evaluate((el) => getComputedStyle(el).backgroundColor);
  // The first public reply met the first-response target.
  await page.getByTestId('sla-first-response').getByText('已达成').waitFor();
  seen.ticketSla = {
    firstResponse: await text(page.getByTestId('sla-first-response')),
    resolution: await text(page.getByTestId('sla-resolution')),
    tone: await page.getByTestId('sla-resolution').getAttribute('data-tone'),
  };

  // An attachment, uploaded with progress, then listed with its download link.
  await page.getByTestId('attachments').locator('input[type=file]').setInputFiles({
    name: '保养单.txt', mimeType: 'text/plain', buffer: Buffer.from('保养项目：机油、机滤\n'),
  });
  await page.getByTestId('attachment-link').filter({ hasText: '保养单.txt' }).waitFor();
  seen.attachmentHref = (await page.getByTestId('attachment-link').first().getAttribute('href'))?.replace(/[0-9a-f-]{36}/, ':id');

  // Status: only the allowed next states are buttons; waiting on the customer pauses the SLA.
  seen.statusButtons = await page.getByTestId('status-buttons').getByRole('button').allTextContents();
  await page.getByTestId('status-pending').click();
  await page.getByTestId('ticket-status').getByText('待回复').waitFor();
  await page.getByTestId('sla-resolution').getByText('已暂停').waitFor();
  seen.pausedSla = await text(page.getByTestId('sla-resolution'));
  seen.statusButtonsPending = await page.getByTestId('status-buttons').getByRole('button').allTextContents();
  await page.getByTestId('status-open').click();
  await page.getByTestId('ticket-status').getByText('处理中').waitFor();

  // Priority and assignee from the side panel: each change is saved at once.
  await page.getByTestId('ticket-priority').click();
  await page.locator('.ant-select-dropdown:visible .ant-select-item-option', { hasText: '高' }).click();
  await page.getByTestId('ticket-assignee').locator('.ant-select').click();
  await page.locator('.ant-select-dropdown:visible .ant-select-item-option', { hasText: '张伟' }).click();
  await page.getByTestId('ticket-priority').locator('.ant-select-selection-item', { hasText: '高' }).waitFor();
  await page.getByTestId('ticket-assignee').locator('.ant-select-selection-item', { hasText: '张伟' }).waitFor();
  // The selects show a choice before its save lands: read the ticket until both have.
  let saved = {};
  for (let i = 0; i < 50; i += 1) {
    saved = (await apiFromPage(page, 'GET', `/tickets/${ticketId}`)).body;
    if (saved.priority === 'high' && saved.assignee_id === me) break;
    await page.waitForTimeout(200);
  }
  seen.sidePanel = { priority: saved.priority, assignedToMe: saved.assignee_id === me };
  await page.mouse.move(0, 0);
  await quiet(page);
  await shot(page, 'ticket-zh-1366');

  // The workflow changes under the page (open may no longer close): the stale button's 409
  // is shown as the API says it. Then the workflow is put back.
  const workflow = (await apiFromPage(page, 'GET', '/ticket-workflow')).body;
  const narrowed = { ...workflow, transitions: { ...workflow.transitions, open: workflow.transitions.open.filter((s) => s !== 'closed') } };
  seen.workflowNarrowed = (await apiFromPage(page, 'PUT', '/ticket-workflow', narrowed)).status;
  await page.getByTestId('status-closed').click();
  await page.getByTestId('status-error').waitFor();
  seen.staleStatus = await text(page.getByTestId('status-error'));
  seen.workflowRestored = (await apiFromPage(page, 'PUT', '/ticket-workflow', workflow)).status;

  // The queues: the ticket is in mine, with its countdown.
  await page.getByRole('menuitem', { name: '工单' }).click();
  await page.getByRole('tab', { name: '全部' }).click();
  await page.getByRole('tab', { name: '我的', exact: true }).click();
  await page.getByRole('link', { name: '车辆保养预约改期' }).waitFor();
  seen.queueSla = await text(page.getByTestId('queue-sla').first());
  seen.queueUrl = new URL(page.url()).search;
  await settle(page);
  await shot(page, 'tickets-zh-1366');

  // A task due today for me, made through the API, is on Home; so is a ticket of mine.
  const due = new Date(Date.now() + 60 * 60 * 1000);
  if (due.getDate() !== new Date().getDate()) due.setTime(Date.now());
  seen.task = (await apiFromPage(page, 'POST', '/tasks', { title: '回访李女士', due_at: due.toISOString(), assignee_id: me })).status;

  // Approvals need two people (nobody approves their own request): a colleague asks me to
  // approve a discount, and I ask the colleague about another customer (which I recall).
  const slug = (await apiFromPage(page, 'GET', '/me')).body.tenant.slug;
  const colleague = { email: `li.na@${slug}.example.com`, password: 'colleague pass 2026' };
  const created = await apiFromPage(page, 'POST', '/users', { ...colleague, name: '李娜', roles: ['admin'] });
  seen.colleague = created.status;
  const theirs = await page.evaluate(async ({ slug, colleague, me }) => {
    // Without this page's cookies: the colleague's own token authenticates.
    const json = { 'content-type': 'application/json' };
    const send = (path, headers, body) => fetch(`/api/v1${path}`, {
      method: 'POST', headers, body: JSON.stringify(body), credentials: 'omit',
    }).then((r) => r.json());
    const login = await send('/auth/login', json, { tenant: slug, ...colleague });
    const auth = { ...json, authorization: `Bearer ${login.token}` };
    const post = (path, body) => send(path, auth, body);
    const customer = await post('/customers', { name: '广州恒达贸易' });
    const approval = await post('/approvals', {
      object: 'customers', record_id: customer.id, title: '广州恒达贸易 折扣审批', steps: [{ approvers: [me] }],
    });
    return approval.id;
  }, { slug, colleague, me });
  const other = await apiFromPage(page, 'POST', '/customers', { name: '深圳前海科技' });
  const mineRequest = await apiFromPage(page, 'POST', '/approvals', {
    object: 'customers', record_id: other.body.id, title: '深圳前海科技 账期审批', steps: [{ approvers: [created.body.id] }],
  });
  seen.approvalRequested = mineRequest.status;

  await page.getByRole('menuitem', { name: '工作台' }).click();
  await page.getByTestId('home-tasks').getByText('回访李女士').waitFor();
  await page.getByTestId('home-tickets').getByText('车辆保养预约改期').waitFor();
  await page.getByTestId('home-approvals').getByText('广州恒达贸易 折扣审批').waitFor();
  seen.homeTicketSla = await text(page.getByTestId('home-ticket-sla').first());
  await page.getByTestId('bell-count').locator('.ant-badge-count').waitFor();
  seen.bellBefore = await page.getByTestId('bell').getAttribute('aria-label');
  await settle(page);
  await shot(page, 'home-work-zh-1366');

  // Approve the colleague's from the inbox with a comment; recall mine.
  await page.getByRole('menuitem', { name: '审批' }).click();
  await page.getByTestId('approval').filter({ hasText: '广州恒达贸易 折扣审批' }).getByTestId('approve').click();
  await page.getByTestId('decision-comment').fill('同意，折扣不超过九折。');
  await page.getByTestId('decision-confirm').click();
  await page.getByText('没有待您审批的事项').waitFor();
  const decided = await apiFromPage(page, 'GET', `/approvals/${theirs}`);
  seen.approvalDecided = { status: decided.body.status, comment: decided.body.decisions[0]?.comment };
  await page.getByRole('tab', { name: '我发起的' }).click();
  const mine = page.getByTestId('approval').filter({ hasText: '深圳前海科技 账期审批' });
  await mine.getByTestId('recall').click();
  await page.getByRole('dialog').getByRole('button', { name: /撤\s*回/ }).click();
  await mine.getByTestId('approval-status').getByText('已撤回').waitFor();
  seen.recalledStatus = await text(mine.getByTestId('approval-status'));
  await quiet(page);
  await shot(page, 'approvals-zh-1366');

  // The bell: its list, then "mark all read" empties the count.
  await page.getByTestId('bell').click();
  await page.getByRole('button', { name: '全部标为已读' }).click();
  await page.getByTestId('bell-count').locator('.ant-badge-count').waitFor({ state: 'detached' });
  seen.bellAfter = await page.getByTestId('bell').getAttribute('aria-label');
  await page.keyboard.press('Escape');

  // The workspace in English, and both languages at phone width.
  await page.goto(new URL(`/tickets/${ticketId}`, page.url()).href);
  await page.getByTestId('composer').waitFor();
  await chooseLanguage(page, 'English');
  await page.getByTestId('sla-first-response').getByText('First response').waitFor();
  seen.ticketSlaEn = await text(page.getByTestId('sla-resolution'));
  seen.noteLabelEn = await text(page.getByTestId('note').first().locator('.ant-tag'));
  await settle(page);
  await shot(page, 'ticket-en-1366');
  await page.setViewportSize({ width: 390, height: 844 });
  await settle(page);
  await shot(page, 'ticket-en-390');
  await chooseLanguage(page, '中文');
  await page.getByTestId('sla-first-response').getByText('首次响应').waitFor();
  await settle(page);
  await shot(page, 'ticket-zh-390');
  seen.ticketScrollsSideways = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.goto(new URL('/tickets?queue=mine', page.url()).href);
  await page.getByTestId('ticket-cards').waitFor();
  await settle(page);
  await shot(page, 'tickets-zh-390');
  seen.queueScrollsSideways = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.setViewportSize({ width: 1366, height: 768 });
}
