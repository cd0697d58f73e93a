// The generic record screens in the browser, as webapp.mjs's signed-in zh-CN page uses them:
// a custom field made through the API, a customer with a Chinese name and that field created
// through the form (after the API's 422 shows under the right field), found by search and by a
// filter on the custom field, opened, edited, its history read; then the list, detail and form
// in English and at phone width. Everything seen goes into `seen`.

/** Calls the API from the page with its cookie session and CSRF token, as the app does. */
async function apiFromPage(page, method, path, body) {
  return page.evaluate(async ({ method, path, body }) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('crm_csrf='))?.slice(9) ?? '';
    const r = await fetch(`/api/v1${path}`, {
      method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, { method, path, body });
}

/** Picks `option` in the Ant Design select with this test id. */
async function choose(page, testId, option) {
  const select = page.getByTestId(testId);
  await select.click();
  // A long list is virtual: typing brings the option into view (where the select searches).
  const search = select.locator('input[type=search]');
  if (await search.isEditable()) await search.fill(option);
  await page.locator(`.ant-select-dropdown:visible .ant-select-item-option[title="${option}"]`).click();
}

const detailLoaded = (page) => page.getByTestId('field-name').waitFor();

export async function recordsFlow(page, { shot, settle, chooseLanguage }, seen) {
  // A custom field of customers, labelled in both languages.
  const field = await apiFromPage(page, 'POST', '/objects/customers/fields', {
    key: 'budget', label: 'Annual budget', labels: { 'zh-CN': '年度预算', en: 'Annual budget' }, type: 'currency',
  });
  seen.customField = field.status;

  // The form: generated from metadata, the custom field among the rest. A wrong e-mail comes
  // back from the API as a 422 and is shown under the e-mail field.
  await page.goto(page.url().split('?')[0]);
  await page.getByTestId('record-new').first().click();
  await page.getByTestId('record-form').waitFor();
  await page.getByLabel('名称', { exact: true }).fill('张三科技');
  await page.getByLabel('电话', { exact: true }).fill('138 0013 8000');
  await page.getByLabel('年度预算', { exact: true }).fill('500000');
  await page.getByLabel('邮箱', { exact: true }).fill('not-an-email');
  await page.getByTestId('record-save').click();
  const emailError = page.locator('.ant-form-item-has-error').filter({ has: page.getByLabel('邮箱', { exact: true }) });
  await emailError.locator('.ant-form-item-explain-error').waitFor();
  seen.fieldError = await emailError.locator('.ant-form-item-explain-error').textContent();
  await settle(page);
  await shot(page, 'form-zh-1366');
  await page.getByLabel('邮箱', { exact: true }).fill('');
  await page.getByTestId('record-save').click();
  await detailLoaded(page);
  seen.createdDetail = {
    name: await page.getByTestId('field-name').textContent(),
    budget: await page.getByTestId('field-budget').textContent(),
  };
  const detailPath = new URL(page.url()).pathname;

  // The same phone again: the API's 409 duplicate shows with a link to the existing record.
  await page.getByRole('menuitem', { name: '客户' }).click();
  await page.getByTestId('record-new').first().click();
  await page.getByLabel('名称', { exact: true }).fill('张三科技（重复）');
  await page.getByLabel('电话', { exact: true }).fill('13800138000');
  await page.getByTestId('record-save').click();
  await page.getByTestId('duplicate-link').waitFor();
  seen.duplicate = await page.getByTestId('form-problem').locator('.ant-alert-message').textContent();
  await page.getByTestId('duplicate-link').click();
  await detailLoaded(page);
  seen.duplicateOpens = new URL(page.url()).pathname === detailPath;

  // Found by search, then by a filter on the custom field (budget ≥ 100,000).
  await page.getByRole('menuitem', { name: '客户' }).click();
  await page.getByLabel('搜索').first().fill('张三');
  await page.keyboard.press('Enter');
  await page.getByRole('cell', { name: '张三科技' }).waitFor();
  await page.getByText('共 1 条').waitFor();
  seen.foundBySearch = await page.getByTestId('record-count').textContent();
  await page.getByLabel('搜索').first().fill('');
  await page.keyboard.press('Enter');
  await page.getByText('共 2 条').waitFor();
  await choose(page, 'filter-field', '年度预算');
  await choose(page, 'filter-op', '大于等于');
  await page.getByTestId('filter-value').fill('100000');
  await page.getByTestId('filter-add').click();
  await page.getByText('共 1 条').waitFor();
  await page.getByRole('cell', { name: '张三科技' }).waitFor();
  seen.foundByFilter = { query: decodeURIComponent(new URL(page.url()).search), count: await page.getByTestId('record-count').textContent() };
  // Sort by clicking a header: ascending, then descending, both kept in the address.
  await page.getByTestId('col-name').click();
  await page.waitForURL(/sort=name/);
  await page.getByTestId('col-name').click();
  await page.waitForURL(/sort=-name/);
  seen.sorted = new URL(page.url()).searchParams.get('sort');
  // The column chooser: a column added stays after a reload (remembered per object).
  await page.getByTestId('column-chooser').click();
  await page.getByRole('checkbox', { name: '年度预算' }).check();
  await page.keyboard.press('Escape');
  await page.reload();
  await page.getByTestId('col-budget').waitFor();
  seen.budgetColumn = await page.getByRole('cell', { name: '¥500,000.00' }).textContent();
  const listPath = new URL(page.url()).pathname + new URL(page.url()).search;

  // Bulk: select the row, add a tag to the selection.
  await page.getByRole('row', { name: /张三科技/ }).getByRole('checkbox').check();
  await page.getByTestId('bulk-bar').waitFor();
  await settle(page);
  await shot(page, 'list-zh-1366');
  await page.getByRole('button', { name: '添加标签' }).click();
  await page.getByRole('dialog').getByLabel('标签').fill('重点客户');
  await page.getByRole('dialog').getByRole('button', { name: /保\s*存/ }).click();
  await page.getByText('已处理 1 条').waitFor();

  // Open it from the list, edit the custom field, read the change in the history.
  await page.getByRole('link', { name: '张三科技' }).click();
  await detailLoaded(page);
  await page.getByTestId('tags').getByText('重点客户').waitFor();
  seen.tags = await page.getByTestId('tags').textContent();
  await page.getByTestId('record-edit').click();
  await page.getByTestId('record-form').waitFor();
  await page.getByLabel('年度预算', { exact: true }).fill('800000');
  await page.getByTestId('record-save').click();
  await page.getByTestId('field-budget').getByText('¥800,000.00').waitFor();
  seen.editedBudget = await page.getByTestId('field-budget').textContent();
  await page.getByRole('tab', { name: '历史' }).click();
  await page.getByTestId('history').getByText('修改').first().waitFor();
  seen.history = await page.getByTestId('history').textContent();
  await page.getByRole('tab', { name: '概览' }).click();
  await settle(page);
  await shot(page, 'detail-zh-1366');

  // Delete after a confirmation, then restore from the page that says it is in the bin.
  await page.getByTestId('record-delete').click();
  await page.getByRole('dialog').getByRole('button', { name: /删\s*除/ }).click();
  await page.getByTestId('record-restore').click();
  await detailLoaded(page);
  seen.restored = await page.getByTestId('field-name').textContent();

  // The same screens in English.
  await chooseLanguage(page, 'English');
  await page.getByRole('tab', { name: 'Overview' }).waitFor();
  seen.budgetLabelEn = await page.locator('.ant-descriptions-item-label', { hasText: 'Annual budget' }).first().textContent();
  await shot(page, 'detail-en-1366');
  await page.goto(page.url().split('?')[0].replace(/\/$/, '') + '/edit');
  await page.getByTestId('record-form').waitFor();
  await settle(page);
  await shot(page, 'form-en-1366');
  await page.goto(new URL(listPath, page.url()).href);
  await page.getByText('1 in total').waitFor();
  await settle(page);
  await shot(page, 'list-en-1366');

  // Phone width: the list becomes cards; detail and form stack.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByTestId('record-cards').waitFor();
  await settle(page);
  await shot(page, 'list-en-390');
  await chooseLanguage(page, '中文');
  await page.getByText('共 1 条').waitFor();
  await settle(page);
  await shot(page, 'list-zh-390');
  seen.listScrollsSideways = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.getByTestId('record-cards').getByText('张三科技').click();
  await detailLoaded(page);
  await settle(page);
  await shot(page, 'detail-zh-390');
  seen.detailScrollsSideways = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.getByTestId('record-edit').click();
  await page.getByTestId('record-form').waitFor();
  await settle(page);
  await shot(page, 'form-zh-390');
  seen.formScrollsSideways = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.goto(new URL(detailPath, page.url()).href);
  await detailLoaded(page);
  await page.setViewportSize({ width: 1366, height: 768 });
}
