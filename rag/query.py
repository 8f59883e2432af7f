"""Question analysis: injections, what is asked for, content words, follow-ups → the retrieval query."""
from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

from .glossary import english_terms
from .text import CJK, detect_script, normalize, t2s

# --- prompt injection and meta requests ----------------------------------------------------------------
_INJECTION = [
    r"忽略|无视|不用管|别管|不要管|跳过|绕过|解除|取消(你的)?(限制|规则)",
    r"(之前|以上|上面|前面|所有|全部)(的)?(指令|指示|规则|设定|限制|要求|提示)",
    r"系统提示|提示词|system\s*prompt|系统指令|原样输出|输出你收到|你的(指令|设定|规则)|开发者模式|developer mode|jailbreak|\bdan\b",
    r"(你|请|請)(现在|現在)?(扮演|假装|假裝)|扮演(一个|一個)|角色扮演|你现在是|你是一个没有|不受限制|没有任何限制|role[- ]?play|pretend|act as|you are now",
    r"编一个|编一份|编造|瞎编|随便说|随便编|杜撰|捏造|make up|invent|fabricate|just guess|"
    r"(^|[.,;:!?]\s*|\b(and|also|please|just|now|then)\s+)say (that|he|she|it|the|there)\b",
    r"ignore (all |any |the |previous |prior |above |your )*(instructions|rules|document|prompt|context)",
    r"系统通知|system\s*:|assistant\s*:|【系统|\[system",
]
_INJECTION_RE = re.compile("|".join(f"(?:{p})" for p in _INJECTION), re.IGNORECASE)
# what follows one of these inside a segment is part of the injection
_SEGMENT_SPLIT = re.compile(r"(?<=[？?。！!；;\n])|(?=[【\[（(])|(?<=[】\]）)])|(?=\b(?:PS|P\.S\.|Also|另外|顺便|然后|答完)\b)|"
                            r"(?=另外|顺便|然后|答完|PS[:：]|问题[:：])|(?=\b(?:and|then) say\b)")


@dataclass(frozen=True)
class Injection:
    """The question without its injected instructions, and whether anything was removed."""

    question: str
    found: bool
    only: bool  # nothing of a real question remains


def strip_injection(question: str) -> Injection:
    """Remove segments that try to change the rules; keep the real question around them."""
    if not _INJECTION_RE.search(question):
        return Injection(question, False, False)
    kept = []
    for seg in _SEGMENT_SPLIT.split(question):
        if seg and not _INJECTION_RE.search(seg):
            kept.append(seg)
    rest = "".join(kept).strip(" ，,、。.;；:：【】[]（）()")
    substantive = len(content_terms(rest)) > 0 and (re.search(f"[{CJK}]{{2}}", rest) or len(rest.split()) >= 3)
    return Injection(rest if substantive else "", True, not substantive)


# --- what the question asks for -------------------------------------------------------------------------
ASKS = {
    "quantity": r"多少|多大|多高|多长|多久能|(?<![哪有])几(个|家|所|种|项|亿|万|千|百|倍|成|笔)|利率|利息|息费|费率|金额|额度|规模|比例|比重|百分之|%|补贴|奖金|奖励多少|资金量|预算|强度目标|how (much|many|big|large)|\brate\b|amount|percentage|budget|size of",
    "time": r"(?<![十一二三四五六七八九])几年(内|能|可以|完成|实现|达到|时间)|(用|花|要)几年|什么时候|啥时候|何时|哪天|哪一天|几号|几月|哪年|哪一年|截止|截至|期限|日期|时间表|多久|有效期|when\b|deadline|what date|which day|how long",
    "person": r"是谁|谁是|由谁|找谁|谁(负责|主管|管|牵头|主导|主持|担任|来管|讲的|说的|做的)|谁[？?。]?$|^谁|哪位|负责人|主任|院长|市长|书记|\bwho\b|whose|name of the (director|head|mayor)",
    "named": r"(哪|那)(几|一)?(所|家|条|座|个|些)?(大学|高校|学校|院校|医院|银行|区|县|廊|园区|公司|机构|部门|单位|街道|地方|城市)|哪几?[所家](?![\u4e00-\u9fff])|具体(是)?在哪|建在哪|哪个区|which (universit|bank|district|compan|institution)|where (is|are) .* (located|built)",
    "procedure": r"怎么申请|注册|登录|下载|开通|入驻|如何申请|怎样申请|(想|要|能|可以|怎么|如何)申请|申请.{0,12}(怎么办|怎么弄|咋办|咋弄|怎么搞|的话)|去哪|在哪(办|申请|报名|看|领|查)|哪里(办|申请|报名|看|领|查)|找谁|流程|手续|材料|条件|门槛|资格|要求是|需要准备|报名|申报|how (do|can|should) (i|we|companies|a company)|how to apply|where (do|can|should|to)|eligib|requirement|procedure|apply for",
    # a specific the speech would have to spell out: features, differences, advantages, which one to choose
    "detail": r"功能|特点|特色|优势|劣势|区别|差别|差异|不同之处|有何不同|有什么不同|好处|优缺点|缺点|哪个好|哪个更|选哪个|该选|怎么选|"
              r"\bfeatures?\b|difference|advantages?|disadvantages?|pros and cons|which (one )?is better|should (i|we) (choose|pick)",
}
_ASKS_RE = {k: re.compile(v, re.IGNORECASE) for k, v in ASKS.items()}
# evidence in a passage that could answer each kind of request
EVIDENCE = {
    "quantity": re.compile(r"[0-9０-９]+(\.[0-9]+)?\s*(%|％|亿|万|元|个|家|所|项|倍|周年|年|人|名)|[一二三四五六七八九十百千万两]+(亿|万|元|个|家|所|项|倍|周年)|百分之"),
    "time": re.compile(r"[0-9]{4}\s*年|[0-9一二三四五六七八九十]+月|[0-9一二三四五六七八九十]+日|截止|期限|之前|以前|年底|年内"),
    "person": re.compile(r"(局长|主任|院长|市长|书记|院士|教授|主席)[\u4e00-\u9fff]{2,3}"),
    "procedure": re.compile(r"申请|申报|办理|受理|窗口|提交|流程|手续|条件|材料|报名|网址|热线|电话"),
}
_LIST_RE = re.compile(r"几(个|项|条|种|大|方面)|多少(个|项|条|种|方面)|how many|哪些|哪几|哪[一二三四五六七八九十两]+(个|项|条|种|大)|列一下|列个|列下|有什么|有啥|都有|包括|包含|分别|几大|列举|列出|什么(内容|举措|措施|方面|体系)|what are|which are|list|name the|include", re.IGNORECASE)


# "where does X appear / how often is it mentioned": about the text itself, never a fact of a kind
OCCURRENCES = re.compile(r"(出现|提到|提及|说到|讲到|谈到)(了)?(在)?(哪|几次|多少次|哪些地方)|"
                         r"(哪些地方|哪里|哪儿|哪几处|几处|哪几个地方)(出现|提到|提及|说到|讲到|谈到)|where .*(mention|appear)|"
                         r"how (many times|often)", re.IGNORECASE)


def asks_for(question: str) -> str:
    """The kind of fact a question asks for: quantity, time, person, named, procedure, detail, or '' (general)."""
    question = t2s(question)  # the patterns are Simplified; "怎麼申請" asks the same as "怎么申请"
    if OCCURRENCES.search(question):
        return ""
    for kind in ("procedure", "time", "named", "person", "quantity", "detail"):
        m = _ASKS_RE[kind].search(question)
        if m and kind == "quantity" and m.group(0).startswith("几") and asks_list(question):
            continue  # "几个大目标列一下" asks for the list, not for a count
        if m:
            return kind
    return ""


_ATTRIBUTE = re.compile(
    r"年利率|利率|利息|费率|额度|金额|规模|预算|补贴标准|补贴|奖金|奖励标准|奖励|目标值|比例|截止时间|截止日期|申请时间|"
    r"时间表|期限|日期|主任|负责人|院长|名单|申请条件|条件|门槛|申请材料|材料|申请流程|流程|办理地点|地址|电话|网址|入口|联系方式|"
    r"功能|特点|优势|区别|差别")


def attribute(question: str) -> str:
    """The attribute a question asks about in the document's terms (利率, 额度, 主任…), or ''."""
    m = _ATTRIBUTE.search(normalize(question))
    return m.group(0) if m else ""


def asks_list(question: str) -> bool:
    """Whether the question asks for an enumeration."""
    return bool(_LIST_RE.search(t2s(question)))


_COUNT_OF_ITEMS = re.compile(r"几(个|项|条|种|大|方面)|多少(个|项|条|种|方面)|how many")


def has_evidence(kind: str, passage: str, question: str) -> bool:
    """Whether a passage contains a fact of the asked kind that the question does not already state."""
    norm_p, norm_q = normalize(passage), normalize(question)
    if kind == "named":
        # a specific name of the asked kind: 'X大学' where X is not just words of the question
        m = _ASKS_RE["named"].search(norm_q)
        noun = re.sub(r"^(哪|那)(几|一)?(所|家|条|座|个|些)?", "", m.group(0)) if m else ""
        noun = noun if noun in ("大学", "高校", "学校", "院校", "医院", "银行", "区", "县", "廊", "园区", "公司", "机构", "部门",
                                "单位") else ""
        if not noun:
            return False
        names = re.findall(rf"[\u4e00-\u9fff]{{2,6}}{noun}", norm_p)
        return any(n not in norm_q and not re.search(r"[一二三四五六七八九十]" + noun + "$", n) for n in names)
    if kind == "quantity" and _COUNT_OF_ITEMS.search(norm_q) and len(re.findall("、", norm_p)) >= 2:
        return True  # "几个体系？": the count can be read off the enumeration
    if kind == "detail":  # the passage names the very specific asked for (功能, 区别…)
        return any(normalize(m.group(0)) in norm_p for m in _ASKS_RE["detail"].finditer(norm_q))
    pattern = EVIDENCE.get(kind)
    if pattern is None:
        return True
    return any(match.group(0) not in norm_q for match in pattern.finditer(norm_p))


# --- content words ----------------------------------------------------------------------------------------
# Words that carry no topic: question words, fillers, and the document's own frame (speech, Wenzhou, policy).
STOP = set("""
的 了 吗 呢 吧 啊 呀 么 嘛 哦 哈 和 与 及 或 在 是 有 没 没有 不 也 都 就 还 又 把 被 给 对 从 向 跟 让 要 会 能 可以 可 想 请 问 一下
什么 啥 哪些 哪个 哪 怎么 怎样 如何 为什么 为啥 多少 几 谁 哪里 干嘛 干什么 是不是 有没有 能不能 会不会 咋 咋样 怎么样 吗 呢
我 我们 你 你们 他 她 它 他们 这 那 这个 那个 这篇 那篇 篇 这里 那里 开头 结尾 最后 最终 达到 效果 目的 想 干嘛 能用 工具 分别 对应 各有 办法 区别 之间 这些 那些 其中 里面 里 上 下 中 方面 这块 那块 一些 一个 个 些 具体 主要 到底 现在 今后 以后 目前
温州 温州市 市 讲话 发言 讲 说 提到 提 提出 说到 文件 文章 规划 计划 政策 内容 部分 局长 工作 打算 准备 举措 措施 做法 东西 情况 怎么回事 回事
支持 扶持 帮 帮助 搞 弄 做 干 关于 对于 以及 还有 另外 其他 别的 告诉 介绍 讲讲 说说 解释 意思 定位 作用 用 用来 用在 是什么 指 指的是 代表
提供 给予 这类 这种 那种 那类 有关 相关 担任 职务 职位 身份 头衔 总结 概括 概述 归纳 要点 大意 核心 观点 核心思想 主旨 重点 部分 几部分 分几 分为 分成 结构 框架 段 几段 几个 几项 几条 几种 几点 讲了 说了 谈了 落脚 开篇 收尾 结语 末尾 开场 主要内容
""".split())


# colloquial words → the document's own terms (used for coverage and added to the retrieval query)
SYNONYMS = {
    # money and finance
    "贷款": "科创指数贷 金融", "借钱": "科创指数贷 金融", "借款": "科创指数贷 金融", "信贷": "科创指数贷 金融",
    "银行": "金融 科创指数贷", "融资": "科技金融 金融", "钱": "金融", "资金": "金融 基金", "投资": "科创基金",
    "基金": "科创基金", "风投": "科创基金", "股权": "科创基金", "专利": "技术产权", "知识产权": "技术产权",
    "证券": "技术产权证券化", "上市": "技术产权证券化",
    # enterprises
    "小企业": "企业", "中小企业": "企业", "小微": "企业", "公司": "企业", "厂": "企业", "工厂": "企业",
    "老板": "企业", "民企": "企业", "科技型": "科技企业", "高新": "科技企业", "初创": "孵化",
    "升级": "技术改造", "设备": "技术改造", "改造": "技术改造", "数字化转型": "技术改造 数字化改革",
    # research and technology
    "卡脖子": "核心技术攻关", "关键技术": "核心技术攻关", "技术难题": "核心技术攻关", "难题": "核心技术攻关",
    "研发": "研发投入 新型研发机构", "研究院": "新型研发机构", "研究所": "新型研发机构", "研究机构": "新型研发机构",
    "研究成果": "科技成果转化", "商业化": "科技成果转化", "产业化": "科技成果转化", "市场化": "科技成果转化",
    "变现": "科技成果转化", "能卖": "科技成果转化", "卖钱": "科技成果转化", "变成产品": "科技成果转化",
    "变成产业": "科技成果转化 创新链产业链", "产品化": "科技成果转化", "研究出来": "科技成果", "成果转化": "科技成果转化", "产学研": "创新联合体 技术创新联盟",
    "实验室": "实验室", "孵化器": "孵化", "众创空间": "孵化", "园区": "平台", "平台": "平台",
    "高校": "高水平大学建设", "大学": "高水平大学建设",
    # talent
    "吸引人才": "人才引育 人才招引", "招才": "人才招引", "抢人": "人才招引",
    "留住": "人才", "人才项目": "重大人才工程", "人才计划": "重大人才工程", "人才工程": "重大人才工程",
    "顶尖人才": "战略人才力量 一流人才", "高端人才": "战略人才力量 一流人才", "高层次人才": "战略人才力量 一流人才",
    "领军人才": "战略人才力量 一流人才", "引进": "人才引育", "招人": "人才", "引才": "人才招引", "大学生": "人才", "毕业生": "人才",
    "专家": "人才", "科学家": "人才", "博士": "人才", "科研人员": "科技人才", "人才政策": "人才",
    "评职称": "人才评价", "职称": "人才评价", "奖励": "评价激励", "激励": "评价激励", "考核": "评价激励",
    "成果归属": "赋权改革", "归谁": "赋权改革", "松绑": "赋权改革 体制机制改革",
    # the city as a whole
    "县区": "市域 全域", "县里": "市域 全域", "市里": "市域", "全市域": "市域 全域", "区县": "市域 全域", "各县": "市域 全域", "各区": "市域 全域", "全市": "市域 全域",
    "统一规划": "一体化 布局", "统筹": "统筹 一体化", "一盘棋": "一体化 统筹", "布局": "布局",
    # services and goals
    "网上": "数字化", "线上": "数字化", "app": "科企通", "小程序": "科企通", "办事": "科企通 服务",
    "创业": "创业", "目标": "创新高地 国家创新型城市", "定位": "龙头", "愿景": "创新高地",
}


def synonyms(text: str) -> list[str]:
    """The document's terms for colloquial words of a text ("贷款" → 科创指数贷 金融), for retrieval and scoring."""
    norm = normalize(text)
    out: list[str] = []
    for key, expansion in SYNONYMS.items():
        if key in norm:
            out.extend(t for t in expansion.split() if t not in out and t not in norm)
    return out


def expansions(text: str) -> set[str]:
    """Every document term a text's colloquial words expand to, whether or not the text also has it."""
    norm = normalize(text)
    return {t for key, expansion in SYNONYMS.items() if key in norm for t in expansion.split()}


_DOMAIN_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _domain_jieba():
    """A jieba tokenizer of its own (the lexical index's jieba stays untouched) with the domain's terms added,
    so 科创指数贷 stays one word."""
    import jieba

    from .glossary import ZH_TO_EN
    from .text import _jieba

    base = _jieba().dt
    jb = jieba.Tokenizer()
    jb.FREQ, jb.total, jb.initialized = dict(base.FREQ), base.total, True
    for term in list(ZH_TO_EN) + ["一区一廊", "揭榜挂帅", "双倍增", "双迈进", "塔尖重器", "金融活水", "大孵化集群"]:
        jb.add_word(term, freq=200000)
    return jb


def add_domain_terms(terms) -> None:
    """Keep a corpus's own named terms (its quoted “新提升”, “成果池”…) whole when questions are segmented."""
    jb = _domain_jieba()
    with _DOMAIN_LOCK:
        new = [t for t in (normalize(t) for t in terms) if len(t) >= 2 and jb.FREQ.get(t, 0) < 200000]
        for t in new:
            jb.add_word(t, freq=200000)
        if new:
            _content_terms.cache_clear()


def content_terms(question: str) -> list[str]:
    """Topic words of a question on t2s text (jieba words minus stop words; English via the glossary)."""
    return list(_content_terms(question))


@functools.lru_cache(maxsize=2048)
def _content_terms(question: str) -> tuple[str, ...]:
    norm = normalize(question)
    words = []
    if detect_script(question) == "en":
        # English words through the glossary, and any Chinese term the question names ("Tell me about 瓯江实验室")
        words = english_terms(question)
        norm = "".join(re.findall(f"[{CJK}]+", norm))
    for w in _domain_jieba().lcut(norm):
        if w in STOP or not re.search(f"[{CJK}0-9a-z]", w):
            continue
        if len(w) == 1 and not w.isdigit():
            continue
        if re.fullmatch(r"[a-z]+", w) and re.search(f"[{CJK}]", norm):
            continue  # Latin words beside Chinese (an English question's glossary expansion)
        words.append(w)
    return tuple(dict.fromkeys(words))


def coverage(terms: list[str], vocabulary_text: str) -> tuple[float, list[str]]:
    """Share of terms found in the (normalised) corpus text, counting a term found when all of its
    character bigrams are; returns (share, missing terms)."""
    if not terms:
        return 0.0, []
    missing = []
    for t in terms:
        if t in vocabulary_text:
            continue
        grams = [t[i : i + 2] for i in range(len(t) - 1)] or [t]
        if not all(g in vocabulary_text for g in grams):
            missing.append(t)
    return 1 - len(missing) / len(terms), missing


# the question is about the speech itself (its speaker, its text, its parts)
META = re.compile(r"讲话|講話|发言|發言|演讲|演講|这篇|這篇|文件|报告|報告|局长|局長|讲者|講者|讲话人|发言人|"
                  r"speech|speaker|document|talk", re.IGNORECASE)


# --- questions about the document as a whole --------------------------------------------------------------
DOC_INTENTS = {
    "summary": r"主要(讲|说|谈|内容)|(讲|说|谈)了(些)?(什么|啥|哪些)|(讲|说)的(是)?(什么|啥)|总结|概括|概述|归纳|要点|大意|"
               r"核心(观点|内容|思想)|主旨|主要内容|summar|overview|main (points?|ideas?|message)|gist|key points|"
               r"what (is|was) (the speech|it|this|the document) about|what does (the speech|it) (say|cover)",
    "structure": r"分(为|成)?(几|哪几)(个)?(部分|段|块|方面)|[几两三四五六七八九十]个?(部分|段|块)|结构|框架|(小)?标题|"
                 r"how many (parts|sections)|structure|outline|headings?",
    "start": r"开头|开篇|一开始|开场|起首|首先(讲|说|谈)|(open|begin|start)s? with|at the (start|beginning)|opening|"
             r"how does (the speech|it) (begin|start|open)|first (part|paragraph)",
    "end": r"结尾|最后(讲|说|谈|提|一段|部分|落脚|怎么说|表|总结|强调|呼吁)|表决心|表态|末尾|收尾|结束(时|的时候|语)|结语|落脚|"
           r"(end|close|conclude)s? with|"
           r"at the end|conclusion|closing|how does (the speech|it) (end|close|finish|conclude)|the ending|"
           r"last (part|paragraph)",
}
_DOC_INTENT_RE = {k: re.compile(v, re.IGNORECASE) for k, v in DOC_INTENTS.items()}


def doc_intents(question: str, vocabulary: str = "") -> list[str]:
    """What a question asks of the document as a whole: its opening, its closing, its summary or structure. A
    summary or structure only when the question names no topic of the documents' (`vocabulary`: their normalised
    text) and either mentions the speech or names nothing else: "讲话主要讲了什么", "记者提问：讲话三个部分的标题",
    not "讲话关于人才讲了什么" nor "总结一下今天的新闻"."""
    q = t2s(question)
    found = [k for k, rx in _DOC_INTENT_RE.items() if rx.search(q)]
    terms = content_terms(question)
    topical = [t for t in terms if not vocabulary or t in vocabulary]
    if topical or (terms and not META.search(q)):
        found = [k for k in found if k not in ("summary", "structure")]
    return found


# --- questions about several things at once -----------------------------------------------------------------
_RESPECTIVELY = re.compile(r"分别|各自|各有|各是|各(是|有|在|讲|说|要)?(什么|啥|哪|怎么)|respectively|each of", re.IGNORECASE)
_ASPECT_SPLIT = re.compile(r"以及|还有|和|与|及|跟|、|，|,|/|\band\b", re.IGNORECASE)


MAX_PARTS = 4


def sub_questions(question: str) -> list[str]:
    """"平台和人才方面分别有什么举措" → ["平台 有什么举措", "人才 有什么举措"]: one question per part of a question
    that asks about several things at once (分别, 各有…), each part's topic words with the shared frame; [] otherwise."""
    if not _RESPECTIVELY.search(t2s(question)):
        return []
    pieces = [p for p in _ASPECT_SPLIT.split(normalize(_RESPECTIVELY.sub("", t2s(question)))) if p]
    topical = [i for i, p in enumerate(pieces) if content_terms(p)]
    if len(topical) < 2:
        return []
    # the last part carries the shared frame after its topic: "人才方面有什么举措" → "人才" + "有什么举措"
    last = topical[-1]
    words = _domain_jieba().lcut(pieces[last])
    own = set(content_terms(pieces[last]))
    cut = max(i for i, w in enumerate(words) if w in own) + 1
    frame = "".join(w for w in words[cut:] if w not in ("方面", "这块", "那块", "上面", "上"))
    frame += "".join(pieces[last + 1:])
    subs = [f"{pieces[i]} {frame}".strip() for i in topical[:-1]] + [f"{''.join(words[:cut])} {frame}".strip()]
    return subs[:MAX_PARTS]  # each part costs a retrieval: a pasted list is not asked about item by item


# --- follow-ups ---------------------------------------------------------------------------------------------
_REFERS_BACK = re.compile(
    r"那个|这个|那些|这些|它|他|她|其中|第[一二三四五六七八九十0-9]+个|上面|刚才|前面|之前说|那.{0,6}呢|呢[？?]?$|还有呢|具体呢|"
    r"^[这那它他她這那個]|^(那|还有|還有|除了)|这块|那块|這塊|那塊|这方面|那方面|这里面|"
    r"\b(it|its|that|this|they|them|those|the other|the first|the second|the third|and what|what about)\b",
    re.IGNORECASE,
)
_ORDINAL = re.compile(r"第([一二三四五六七八九十0-9]+)(个|项|条|点)")
_CN_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}


def is_follow_up(question: str, history: list[tuple[str, str]], vocabulary: str = "") -> bool:
    """A question that needs the conversation: it refers back (那个, 其中, 它, …呢, it, that…), or it is short and
    names no topic of its own ("规模多大？"). "甌江實驗室是什麼" is short but stands alone."""
    if not history:
        return False
    if _REFERS_BACK.search(question):
        return True
    short = len(normalize(question)) <= 8 if detect_script(question) != "en" else len(question.split()) <= 4
    own = [t for t in content_terms(question) if not vocabulary or t in vocabulary]
    return short and not own


def ordinal(question: str) -> int | None:
    """'第三个' → 3."""
    m = _ORDINAL.search(question)
    if not m:
        return None
    n = m.group(1)
    if n.isdigit():
        return int(n)
    if n.startswith("十"):
        return 10 + _CN_NUM.get(n[1:], 0) if len(n) > 1 else 10
    return _CN_NUM.get(n)


def retrieval_query(question: str, history: list[tuple[str, str]], vocabulary: str = "") -> str:
    """The text retrieval searches with: the question, the previous user turn for follow-ups, and the
    glossary's Chinese terms for English questions."""
    parts = [question]
    if is_follow_up(question, history, vocabulary):
        parts.insert(0, history[-1][0])
    if detect_script(question) == "en":
        parts.extend(english_terms(" ".join(parts)))
    parts.extend(synonyms(" ".join(parts)))
    return " ".join(dict.fromkeys(parts))
