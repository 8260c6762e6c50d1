//! The console's words in Chinese (the default) and English (`?lang=en`, kept in the
//! `yb_lang` cookie). Templates read fields of [`Strings`], so a missing translation is a
//! build error; field, option, village and department names come from the schema's
//! labels instead.

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// 中文 (default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Parses `zh` or `en`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// True for English (the schema's labels take this flag).
    pub fn en(self) -> bool {
        self == Lang::En
    }

    /// The same language for the model's reasons ([`yibiao_model::messages::Message`]).
    pub fn message(self) -> yibiao_model::messages::Lang {
        match self {
            Lang::Zh => yibiao_model::messages::Lang::Zh,
            Lang::En => yibiao_model::messages::Lang::En,
        }
    }

    /// The words of this language.
    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

macro_rules! strings {
    ($($name:ident: $zh:literal, $en:literal;)*) => {
        /// Every fixed word of the console, in one language.
        #[derive(Debug)]
        pub struct Strings {
            $(
                #[doc = $en]
                pub $name: &'static str,
            )*
        }
        /// 中文.
        pub const ZH: Strings = Strings { $($name: $zh,)* };
        /// English.
        pub const EN: Strings = Strings { $($name: $en,)* };
    };
}

strings! {
    html_lang: "zh-CN", "en";
    product: "一表通", "yibiao";
    other_lang: "English", "中文";
    other_lang_code: "en", "zh";
    sign_in: "登录", "Sign in";
    sign_out: "退出", "Sign out";
    login: "账号", "Account";
    password: "密码", "Password";
    wrong_password: "账号或密码不正确。", "Wrong account or password.";
    locked: "密码错误次数过多，账号已暂时锁定。请在以下时间后重试（秒）：", "Too many wrong passwords; sign-in is locked. Retry after (seconds):";
    records: "数据", "Records";
    staff: "账号管理", "Staff accounts";
    change_password: "修改密码", "Change password";
    current_password: "当前密码", "Current password";
    new_password: "新密码（至少10位）", "New password (at least 10 characters)";
    password_changed: "密码已修改，请重新登录。", "Password changed; sign in again.";
    save: "保存", "Save";
    entity: "类别", "Type";
    village: "村", "Village";
    all: "全部", "All";
    form: "表单", "Form";
    state: "填报", "Filled";
    complete: "已填全", "Complete";
    incomplete: "未填全", "Incomplete";
    conflicted_only: "仅有冲突", "Conflicts only";
    conflict: "冲突", "Conflict";
    search: "搜索", "Search";
    filter: "筛选", "Filter";
    sort: "排序", "Sort by";
    created: "录入先后", "Entry order";
    descending: "倒序", "Descending";
    shown: "条记录", "records";
    page: "页", "page";
    previous: "上一页", "Previous";
    next: "下一页", "Next";
    no_records: "没有符合条件的记录。", "No records match.";
    download_xlsx: "下载 Excel", "Download Excel";
    download_summary: "下载各村汇总 Excel", "Download the village summary (Excel)";
    resolve: "采用此值", "Keep this value";
    new_value: "另填新值：", "Another value:";
    history: "修改记录", "History";
    no_history: "还没有修改记录。", "No changes yet.";
    resolved: "冲突已处理", "conflict resolved";
    field: "字段", "Field";
    value: "当前值", "Current value";
    competing: "冲突的值", "Competing values";
    by: "录入人", "Entered by";
    at: "时间", "When";
    phone: "手机", "Phone";
    record: "记录", "Record";
    township_level: "镇级", "Township level";
    deleted: "已删除", "Deleted";
    back: "返回列表", "Back to the list";
    role: "角色", "Role";
    name: "姓名", "Name";
    department: "部门", "Department";
    township: "镇", "Township";
    disabled: "已停用", "Disabled";
    reset_password: "重置密码", "Reset password";
    new_password_once: "新密码（只显示一次）：", "New password (shown once):";
    audit_log: "操作记录", "Audit log";
    action: "操作", "Action";
    target: "对象", "Target";
    address: "地址", "Address";
    error: "出错了", "Something went wrong";
    role_admin: "管理员", "Administrator";
    role_leader: "领导", "Leader";
    role_clerk: "办事员", "Clerk";
    tasks: "任务", "Tasks";
    status: "状态", "Status";
    no_tasks: "还没有任务。", "No tasks yet.";
    due: "截止", "due";
    records_complete: "已填全记录", "Records complete";
    task_sent: "已下发", "Sent";
    task_delivered: "已送达", "Delivered";
    task_opened: "已查看", "Opened";
    task_overdue: "已逾期", "Overdue";
    task_done: "已完成", "Done";
    task_cancelled: "已取消", "Cancelled";
    issue_task: "下发任务", "Issue a task";
    task_title: "任务名称", "Title";
    villages: "下发到哪些村", "Villages";
    or_records: "或指定记录（记录编号，每行一个）", "Or named records (record ids, one a line)";
    instructions: "说明", "Instructions";
    cancel_task: "取消任务", "Cancel task";
    task_issued: "已下发：", "Issued: ";
    task_was_cancelled: "已取消：", "Cancelled: ";
    cadres: "村干部", "Cadres";
    cadre_id: "编号", "Id";
    phones: "手机", "Phones";
    add_cadre: "添加村干部", "Add a cadre";
    cadre_added: "已添加：", "Added: ";
    cadre_disabled: "已停用：", "Disabled: ";
    cadre_moved: "已调动（其手机需重新登记）：", "Moved (their phones must enrol again): ";
    disable: "停用", "Disable";
    move_to: "调到", "Move to";
    move_rule: "调动或停用村干部时，其手机立即停止同步；调动后请发新的登记码，手机重新登记后即获得新村的数据。", "Moving or disabling a cadre stops their phones at once; after a move, issue a new enrolment code: the phone enrols again and gets the new village's records.";
    enrol_code: "登记码", "Enrolment code";
    enrol_code_for: "手机登记码：", "Enrolment code for";
    enrol_type: "用手机扫描二维码，或输入：", "Scan the QR code with the phone, or type:";
    enrol_expires: "有效至", "Valid until";
    enrol_once: "只能用一次；新码会使旧码作废。", "Works once; a new code cancels this one.";
    last_seen: "最近同步", "Last sync";
    never: "从未", "never";
    revoke: "吊销", "Revoke";
    revoked: "已吊销", "Revoked";
    device_revoked: "已吊销手机：", "Phone revoked: ";
    dept_tokens: "部门令牌", "Department tokens";
    token_name: "用途（系统或使用人）", "Used by (system or person)";
    issue_token: "发放令牌", "Issue a token";
    token_once: "新令牌（只显示一次，请复制到部门系统）：", "New token (shown once; copy it into the department's system):";
    token_revoked: "已吊销令牌：", "Token revoked: ";
    created_at: "创建时间", "Created";
    add_staff: "添加账号", "Add an account";
    staff_added: "账号已创建。初始密码（只显示一次）：", "Account created. First password (shown once):";
    staff_disabled: "已停用账号：", "Account disabled: ";
    summary: "汇总", "Summary";
    summary_help: "每个村每张表已填全的记录数 / 记录总数。", "Records complete / records, per village and form.";
    burden: "减负", "Burden";
    burden_help: "干部录入一次的值，送达了多少个部门的表：复用率 = 送达次数 / 录入次数。", "Each value a cadre typed once reaches every department whose form asks for it: reuse ratio = deliveries / values typed.";
    burden_overall: "录入与送达", "Typed vs delivered";
    deliveries_by_department: "各部门收到的值", "Values each department received";
    values_typed: "录入的值", "Values typed";
    deliveries: "送达次数", "Deliveries";
    reuse_ratio: "复用率", "Reuse ratio";
    entries_saved: "少录入", "Entries saved";
    from_day: "从", "From";
    to_day: "到", "To";
}
