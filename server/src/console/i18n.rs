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
}
