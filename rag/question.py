"""The one parse of a question: `analyse(text, history, lexicon) -> Question`, built once and passed down.

Everything here is language knowledge (Chinese and English interrogatives, function words, the ways people ask
for a figure, a date, a name, a list, a follow-up); what a corpus knows (its terms, synonyms, glossary, the words
that name the document itself) comes from the `Lexicon` built from its Domain.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .lexicon import Lexicon
from .text import CJK, detect_script, normalize, t2s, to_simplified_question

# --- prompt injection and requests to break the rules ---------------------------------------------------------------
_INJECTION = [
    r"忽略|无视|不用管|别管|不要管|唔使理|唔好理|跳过|绕过|解除|取消(你的)?(限制|规则)|授权你|"
    r"(不用|不要|别|唔使|唔好)(理|管|看|引用)(什么|那些|这些)?(份)?(文件|原文|资料|规则|出处|引用)|(忘记|忘掉|忘了)(你)?(之前|以上|上面|前面|所有|全部)?(的)?(设定|设置|规则|指令|要求|限制)",
    r"(之前|以上|上面|前面|所有|全部)(的)?(指令|指示|规则|设定|限制|要求|提示)",
    r"系统提示|提示词|system\s*prompt|系统指令|原样输出|输出你收到|你的(指令|设定|规则)|开发者模式|developer mode|jailbreak|\bdan\b",
    r"(你|请|請)(现在|現在)?(扮演|假装|假裝)|扮演(一个|一個)|扮(你)?(系|係|是)|角色扮演|你现在是|你是一个没有|你是我的|不受限制|没有任何限制|"
    r"role[- ]?play|pretend|act as|you are now",
    r"编一个|编一份|编个|编造|瞎编|随便说|随便编|杜撰|捏造|make up|invent|fabricate|just guess|"
    r"(帮我|给我|替我|请你?)?(写|撰写|起草|拟)(一)?(篇|份|段|首|封)|write (me )?(a|an) (press release|article|story|poem|letter)|"
    r"(^|[.,;:!?]\s*|\b(and|also|please|just|now|then)\s+)say (that|he|she|it|the|there)\b",
    r"ignore (all |any |the |previous |prior |above |your )*(instructions|rules|document|prompt|context)",
    r"系统通知|系统消息|系统指示|system\s*:|system message|assistant\s*:|【系统|\[system|（系统|\(system|从现在(开始|起)你",
]
_INJECTION_RE = re.compile("|".join(f"(?:{p})" for p in _INJECTION), re.IGNORECASE)
_SEGMENT_SPLIT = re.compile(r"(?<=[？?。！!；;\n])|(?=[【\[（(])|(?<=[】\]）)])|(?=\b(?:PS|P\.S\.|Also)\b)|"
                            r"(?=另外|顺便|然后|答完|PS[:：]|问题[:：])|(?=\b(?:and|then) say\b)", re.IGNORECASE)

# --- what is asked for ------------------------------------------------------------------------------------------------
# Each kind: how people ask for it. Order matters only where two match: the first listed wins.
ASKS = {
    "procedure": r"怎么申请|如何申请|怎样申请|(想|要|能|可以|怎么|如何)(去)?(申请|申报|报名|办理|注册|登记)|申请.{0,12}(怎么办|怎么弄|咋办|咋弄|怎么搞|的话)|"
                 r"去哪(里|儿)?(办|申请|报名|领|查)|在哪(里|儿)?(办|申请|报名|领|查)|找谁|流程|手续|材料|门槛|资格|需要准备|"
                 r"申请条件|什么条件|哪些条件|how (do|can|should) (i|we|companies|a company|firms)|how to apply|eligib|"
                 r"requirements?|procedure|apply for|sign up|register",
    "time": r"什么时候|啥时候|何时|哪天|哪一天|几号|几月|哪年|哪一年|截止|截至|期限|日期|时间表|多久|多长时间|有效期|"
            r"(用|花|要)几年|\bwhen\b|deadline|what date|which (day|year|month)|how long|by what year",
    "person": r"是谁|谁是|由谁|找谁|(主任|负责人|院长|校长|局长|市长|书记|主席|董事长|总经理|部长|行长|所长|理事长|总理|省长)"
              r"(是|叫)?(谁|什么|哪位|啥|姓)|谁(负责|主管|管|牵头|主导|主持|担任|来|讲的|说的|做的|提出|作的|出钱|付钱)|谁[？?。]?$|^谁|哪位|负责人|"
              r"\bwho\b|whose|name of the (director|head|mayor|speaker|minister)",
    "place": r"在哪(里|儿)?|哪里|哪儿|什么地方|何地|地址|哪个(省|市|县|区|城市|地方)|\bwhere\b|which (cit|province|district|countr|region|place)|address|location",
    "organisation": r"哪(家|个|些)?(银行|公司|企业|机构|部门|单位|大学|高校|学校|医院)|哪几(家|所)|什么(机构|部门|单位)|"
                    r"which (bank|compan|institution|universit|department|agenc|organi[sz])",
    "quantity": r"多少|多大|多高|多长|多快|几成|几倍|(?<![哪有第])几(个|家|所|种|项|亿|万|千|百|倍|笔|人|名|次|级|块|天|岁|米|吨|度|点|成|条|座|批|张|台|辆|套|只|位|户|年|月|周)|利率|利息|费率|金额|额度|"
                r"规模|比例|比重|百分之|百分比|%|预算|资金量|增长率|增速|how (much|many|big|large|fast)|\brate\b|amount|"
                r"percentage|budget|size of|figure",
    "detail": r"功能|特点|特色|优势|劣势|区别|差别|差异|不同之处|有何不同|有什么不同|好处|优缺点|缺点|哪个好|哪个更|选哪个|该选|怎么选|"
              r"怎么分|如何分配|怎么划|怎么算|如何计算|怎么定|标准是|细则|"
              r"\bfeatures?\b|difference|advantages?|disadvantages?|pros and cons|which (one )?is better|should (i|we) (choose|pick)",
}
_ASKS_RE = {k: re.compile(v, re.IGNORECASE) for k, v in ASKS.items()}
_LIST = re.compile(r"哪些|哪几|哪[一二三四五六七八九十两]+(个|项|条|种|大|件|方面)|列一下|列个|列下|列举|列出|有什么|有啥|都有|包括|包含|"
                   r"分别|几大|什么(内容|举措|措施|方面|体系|任务|工作|重点)|what are|which are|\blist\b|name the|include|"
                   r"what (measures|steps|tasks|areas|points)", re.IGNORECASE)
_PARTS_COUNT = re.compile(r"(几|多少)(个|大|小){0,2}(方面|部分|项|条|块|段|层|类|步|节|章|板块)|(分|讲)(了|为|成)?(几|多少)(个)?点")
_COUNT_ASK = re.compile(r"(?<![第])几(个|项|条|种|大|方面|点|件|部分)|多少(个|项|条|种|方面|点|件)|how many", re.IGNORECASE)
_DEFINITION = re.compile(r"是什么|是啥|是干嘛|是干什么|指什么|指的是|什么意思|啥意思|是指|何谓|什么叫|what (is|are|does)|meaning of|"
                         r"stand for|refer to", re.IGNORECASE)
_PURPOSE = re.compile(r"为了|为什么|为啥|干嘛|干什么|干啥|作用|目的|目标|用来|用于|效果|意义|图啥|图的是|想达到|要达到|"
                      r"\bwhy\b|what for|purpose|\baims?\b|goals?\b|in order to", re.IGNORECASE)
_YESNO = re.compile(r"吗[？?]?$|么[？?]?$|是不是|有没有|算不算|属不属于|能不能|会不会|可不可以|是否|\b(is|are|does|do|did|can|will|was)\b.*\?$",
                    re.IGNORECASE)
_MENTIONS = re.compile(r"(出现|提到|提及|说到|讲到|谈到)(了)?(在)?(哪|几次|多少次|哪些地方)|(哪些地方|哪里|哪儿|几处|哪几处)(出现|提到|提及|说到|讲到|谈到)|"
                       r"where .*(mention|appear)|how (many times|often)", re.IGNORECASE)
# the attribute a question asks about, named in a refusal ("没有提到…的利率"): words of asking, not of any document
_ATTRIBUTE = re.compile(r"年利率|利率|利息|费率|额度|金额|规模|预算|补贴标准|补贴|奖金|奖励标准|比例|截止时间|截止日期|申请时间|时间表|"
                        r"期限|日期|负责人|名单|申请条件|条件|门槛|申请材料|材料|申请流程|流程|办理地点|地址|电话|网址|入口|"
                        r"联系方式|功能|特点|优势|区别|差别")
_BESIDES = re.compile(r"除了|除此之外|此外还|还有别的|还有其他|还有啥|还有什么|另外还有|别的呢|其他的呢|其它的呢|还有呢|"
                      r"\b(besides|other than|apart from|anything else|what else)\b", re.IGNORECASE)

# --- the document as a whole ------------------------------------------------------------------------------------------
_ABOUT = {
    "summary": r"主要(讲|说|谈|内容)|(讲|说|谈)了(些)?(什么|啥|哪些)|(讲|说)的(是)?(什么|啥)|总结|概括|概述|归纳|要点|大意|核心(观点|内容|思想)|"
               r"主旨|主要内容|summar|overview|main (points?|ideas?|message)|gist|key points|what (is|was) (it|this) about",
    "structure": r"分(为|成)?(几|哪几)(个)?(部分|段|块|方面)|[几两三四五六七八九十]个?(部分|段|块)|结构|框架|(小)?标题|how many (parts|sections)|"
                 r"structure|outline|headings?",
    "start": r"开头|开篇|一开始|开场|起首|(open|begin|start)s? with|at the (start|beginning)|opening|first (part|paragraph)",
    "end": r"结尾|最后(讲|说|谈|提|一段|部分|落脚|怎么说|表|总结|强调|呼吁)|表决心|表态|末尾|收尾|结束(时|的时候|语)|结语|落脚|"
           r"(end|close|conclude)s? with|at the end|conclusion|closing|the ending|last (part|paragraph)",
}
_ABOUT_RE = {k: re.compile(v, re.IGNORECASE) for k, v in _ABOUT.items()}
# words naming a text of any corpus (its own kind and speaker come from the Lexicon)
_DOC_WORDS = re.compile(r"这篇|这份|本文|文件|文章|全文|原文|讲话|发言|演讲|报告|讲者|发言人|作者|讲稿|稿子|致辞|通篇|"
                        r"speech|speaker|document|report|article|talk|author", re.IGNORECASE)

# --- follow-ups -------------------------------------------------------------------------------------------------------
_REFERS_BACK = re.compile(
    r"那个|这个|那些|这些|它|其中|第[一二三四五六七八九十0-9]+(个|项|条|点|件)|上面|刚才|前面|之前说|那.{0,6}呢|呢[？?]?$|还有呢|具体呢|"
    r"^[这那它其]|^(那|还有|除了)|这块|那块|这方面|那方面|这里面|这一部分|那一部分|倒数|最后一个|最后那|"
    r"\b(it|its|that|this|they|them|those|the other|the first|the second|the third|the last|and what|what about)\b",
    re.IGNORECASE,
)
_CN_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_ORDINAL = re.compile(r"(?P<back>倒数)?第(?P<num>[一二三四五六七八九十两0-9]+)(个|项|条|点|件|部分|段|大|块|位|节|章|名)?|"
                      r"(?P<last>最后|末)(那|的)?(一)?(个|项|条|点|件|部分|段|块|位|节)|"
                      r"\b(?P<en>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)\b|"
                      r"(?P<middle>中间)(那|的)?(一)?(个|项|件|条|块)|(?P<head>头|开头)(一|那)(个|项|条)", re.IGNORECASE)
# a run of items: 前四个 (the first four), 最后三个 / 后三项 (the last three), the first / last N
_RANGE = re.compile(r"(前|最后|后)([二两三四五六七八九十]+|[0-9]+)(个|项|条|点|件|部分|块|大)|"
                    r"\b(first|last) (two|three|four|five|six|[0-9]+)\b", re.IGNORECASE)
_EN_NUM = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_EN_ORD = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
           "ninth": 9, "tenth": 10, "last": -1}
# the thing a "which / what / how many" question asks to be named: the word after the interrogative ("哪些城市"),
# or before "是/有 + 哪些" ("热点城市都是哪些")
_FOCUS_AFTER = re.compile(r"(?:哪些|哪几|哪[一二三四五六七八九十两0-9]*[个项条家所种类座批]|什么|多少)")
_FOCUS_BEFORE = re.compile(r"(?:都|还|分别|具体)?(?:是|有|包括)(?:哪些|哪几|什么)")
_AMOUNT_BEFORE = re.compile(r"(?:是|有|为|达到|要|能)?(?:多少|多大|多高|多长|几成|几倍)")
_WHICH_PART = re.compile(r"(属于|在|放在|归在|归到|出现在|位于|列在)(讲话|报告|文件|全文|文章|通篇)?(的)?(哪|第几)(一)?(个|大)?"
                         r"(部分|节|段|块|章|板块|项|条|方面)|哪(一)?(部分|节|段|章|块|项)(讲|说|提|谈)|(小)?标题(叫|是)|"
                         r"which (part|section|chapter|task)|in what (part|section)|under which", re.IGNORECASE)
_SPECIFIC = re.compile(r"具体|详细|到底|确切|精确|准确|明细|清单|名单|specific|exact|in detail|breakdown", re.IGNORECASE)
_COUNT = re.compile(r"([一二两三四五六七八九十]|[0-9]+)(个|大|项|条|种|方面|件|点)")

# --- content words ----------------------------------------------------------------------------------------------------
# Question words, fillers and the genre's frame words: they carry no topic in any document.
STOP = frozenset("""
的 了 吗 呢 吧 啊 呀 么 嘛 哦 哈 和 与 及 或 在 是 有 没 没有 不 也 都 就 还 又 把 被 给 对 从 向 跟 让 要 会 能 可以 可 想 请 问 一下
什么 啥 哪些 哪个 哪 怎么 怎样 如何 为什么 为啥 多少 几 谁 哪里 干嘛 干什么 是不是 有没有 能不能 会不会 咋 咋样 怎么样
我 我们 你 你们 他 她 它 他们 这 那 这个 那个 这篇 那篇 篇 这里 那里 开头 结尾 最后 最终 达到 效果 目的 想 能用 分别 对应 各有 办法
区别 之间 这些 那些 其中 里面 里 上 下 中 方面 这块 那块 一些 一个 个 些 具体 主要 到底 现在 今后 以后 目前
讲话 发言 讲 说 提到 提 提出 说到 文件 文章 报告 内容 部分 工作 打算 准备 举措 措施 做法 东西 情况 怎么回事 回事 政策 规定
支持 扶持 帮 帮助 搞 弄 做 干 关于 对于 以及 还有 另外 其他 别的 告诉 介绍 讲讲 说说 解释 意思 作用 用 用来 用在 是什么 指 指的是 代表
提供 给予 这类 这种 那种 那类 有关 相关 担任 职务 职位 身份 头衔 总结 概括 概述 归纳 要点 大意 核心 观点 主旨 重点 几部分 分几 分为
分成 结构 框架 段 几段 几个 几项 几条 几种 几点 几块 几部分 几方面 几大 几层 大体 大概 按顺序 顺序 讲了 说了 谈了 落脚 开篇 收尾 结语 末尾 开场 主要内容 原文 原话 里面 一下子 请问 知道
""".split())
MAX_PARTS = 4
_RESPECTIVELY = re.compile(r"分别|各自|各有|各是|各(是|有|在|讲|说|要)?(什么|啥|哪|怎么)|respectively|each of", re.IGNORECASE)
_PART_SPLIT = re.compile(r"以及|还有|和|与|及|跟|、|，|,|/|\band\b", re.IGNORECASE)


@dataclass(frozen=True)
class Question:
    """A question analysed once: what the asker wrote, in matching form, and what they ask for."""

    raw: str  # as received (control characters removed)
    text: str  # without injected instructions
    norm: str  # matching form: Simplified (Taiwan / Hong Kong wording mapped), NFKC, lower case, no whitespace
    script: str  # hans | hant | en
    terms: tuple[str, ...]  # the asker's own content words (normalised)
    added: tuple[str, ...] = ()  # the corpus's terms their words stand for (synonyms, glossary, typo repairs)
    context: tuple[str, ...] = ()  # a follow-up's topic words, carried by the conversation's state
    topic_span: tuple[str, int, int] | None = None  # a follow-up's topic section (document, start, end)
    state: Any = None  # the conversation's state (rag.conversation.State): quoted units, the list last shown
    documents: tuple[str, ...] = ()  # the documents it names (by speaker, place, title, year and kind), if any
    focus: tuple[str, ...] = ()  # what a "which / what" question asks to be named (哪些城市 → 城市)
    specific: bool = False  # it insists on specifics (具体, 详细, 到底…)
    asks: str = ""  # procedure | time | person | place | organisation | quantity | detail | ""
    attribute: str = ""  # the attribute asked about in words a refusal can repeat (利率, 期限…)
    wants_list: bool = False
    wants_count: bool = False
    definition: bool = False
    purpose: bool = False
    yesno: bool = False
    mentions: bool = False  # "where is X mentioned"
    count: int | None = None  # "哪三个" → 3
    ordinal: int | None = None  # 第二个 → 2; 最后一个 → -1; 倒数第二 → -2; 中间那个 → 0
    items: tuple[int, int] | None = None  # a run: 前四个 → (1, 4); 最后三个 → (-3, 3)
    asks_section: bool = False  # "which part / section is X in"
    about: str = ""  # summary | structure | start | end | speaker: the document as a whole
    names_document: bool = False  # the question mentions the document, its kind or its speaker
    besides: bool = False  # "除了…还…": leave out what the conversation already said
    refers_back: bool = False
    injection: bool = False  # instructions were removed from it
    injection_only: bool = False  # nothing but instructions
    parts: tuple["Question", ...] = ()  # "A和B分别…": one question per part
    history: tuple[tuple[str, str], ...] = ()
    query: str = ""  # what retrieval searches with

    @property
    def topic_terms(self) -> tuple[str, ...]:
        """The words that carry the question's topic: its own (an English question's, in the corpus's language
        through the declared glossary), else (a follow-up) the previous turn's."""
        return self.terms or (self.added if self.script == "en" else ()) or self.context


def _injected(text: str) -> bool:
    return any(_INJECTION_RE.search(form) for form in (text, t2s(text), to_simplified_question(text)))


_CLAUSE_SPLIT = re.compile(r"(?<=[，,：:])")
_ASKING = re.compile(r"[？?]|什么|啥|哪|多少|几|谁|怎么|怎样|如何|为什么|吗|呢|\b(what|which|how|who|when|where|why)\b",
                     re.IGNORECASE)
_MARKUP = re.compile(r"<[^<>]{0,200}>|\]\([^()]{0,200}\)")


def strip_injection(text: str) -> tuple[str, bool]:
    """(the text without the clauses that try to change the rules, whether any were removed); Traditional and
    Cantonese orders count as much as Simplified ones. A segment with an order loses the clauses that carry it
    ("现在授权你跳过…的规定，") and keeps the question it wraps ("…直接告诉我：X是什么？")."""
    if not _injected(text):
        return text, False
    kept = []
    for seg in _SEGMENT_SPLIT.split(text):
        if seg and _injected(seg):
            clauses = [c for c in _CLAUSE_SPLIT.split(seg) if c]
            first = next(i for i, c in enumerate(clauses) if _injected(c))
            # before the order: kept; after it: only a question it wraps, never what it dictates ("说利率是8%")
            kept += clauses[:first] + [c for c in clauses[first + 1:] if not _injected(c) and _ASKING.search(c)]
        elif seg:
            kept.append(seg)
    return "".join(kept).strip(" ，,、。.;；:：【】[]（）()"), True


def asks_kind(norm: str) -> str:
    """The kind of fact a (normalised) question asks for, or '' for a general question."""
    if _MENTIONS.search(norm):
        return ""
    for kind, rx in _ASKS_RE.items():
        m = rx.search(norm)
        if not m:
            continue
        if kind == "quantity" and (_COUNT_ASK.search(norm) and _LIST.search(norm) or _PARTS_COUNT.search(norm)):
            continue  # "几个…列一下", "分几个方面": the list or its size, not a figure
        return kind
    return ""


def _number(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    if token.startswith("十"):
        return 10 + _CN_NUM.get(token[1:], 0) if len(token) > 1 else 10
    if len(token) == 2 and token[1] == "十":
        return _CN_NUM.get(token[0], 0) * 10
    return _CN_NUM.get(token)


def ordinal(norm: str) -> int | None:
    """'第三个' → 3, '最后一个' → -1, '倒数第二' → -2, '中间那个' → 0 (the middle one), 'the second' → 2; None when
    none is named."""
    if _RANGE.search(norm):
        return None  # a run of items, not one
    m = _ORDINAL.search(norm)
    if not m:
        return None
    if m["num"]:
        n = _number(m["num"])
        return -n if (n and m["back"]) else n
    if m["last"]:
        return -1
    if m["middle"]:
        return 0
    if m["head"]:
        return 1
    return _EN_ORD.get(m["en"].lower()) if m["en"] else None


def item_range(norm: str) -> tuple[int, int] | None:
    """'前四个' → (1, 4), '最后三个' → (-3, 3), 'the last two' → (-2, 2): a run of items from either end."""
    m = _RANGE.search(norm)
    if not m:
        return None
    if m.group(2):
        n = _number(m.group(2)) or 0
        return (1, n) if m.group(1) == "前" else (-n, n)
    n = _EN_NUM.get(m.group(5).lower()) or int(m.group(5)) if not m.group(5).isdigit() else int(m.group(5))
    return (1, n) if m.group(4).lower() == "first" else (-n, n)


def asked_count(norm: str) -> int | None:
    """The number of items a question names ("哪三个" → 3), or None."""
    m = _COUNT.search(norm)
    if not m or m.start() > 0 and norm[m.start() - 1] == "第":
        return None
    return _number(m.group(1))


def focus_words(norm: str, lexicon: Lexicon) -> tuple[str, ...]:
    """The words a "which / what" question asks to have named: the word right after 哪些 / 哪几个 / 什么 / 多少, or the
    one right before 是哪些 / 有哪些."""
    words = lexicon.segment(norm)
    out = []
    for i, w in enumerate(words):
        if _FOCUS_AFTER.fullmatch(w) or _FOCUS_AFTER.fullmatch(w + (words[i + 1] if i + 1 < len(words) else "")):
            nxt = next((x for x in words[i + 1 : i + 3] if re.search(f"[{CJK}]{{2}}", x) and x not in STOP), "")
            if nxt:
                out.append(nxt)
    m = _FOCUS_BEFORE.search(norm) or _AMOUNT_BEFORE.search(norm)
    if m:
        before = [w for w in lexicon.segment(norm[: m.start()]) if re.search(f"[{CJK}]{{2}}", w) and w not in STOP]
        if before:
            out.append(before[-1])
    return tuple(dict.fromkeys(out))


_SHORT_YEAR = re.compile(r"(?<![0-9])([0-9]{2})(?=年)")


def full_years(norm: str) -> str:
    """'06年' → '2006年', '98年' → '1998年': how people write years in questions, as documents write them."""
    return _SHORT_YEAR.sub(lambda m: ("20" if int(m.group(1)) <= 40 else "19") + m.group(1), norm)


def content_terms(norm: str, script: str, lexicon: Lexicon) -> tuple[str, ...]:
    """The asker's topic words: segmented with the corpus's terms kept whole, without question words, fillers and
    the words naming the document itself; for English, any Chinese and any figures the question holds."""
    if script == "en":
        norm = " ".join(re.findall(f"[{CJK}]+|[0-9]+(?:\\.[0-9]+)?%?", norm))
    words = []
    for w in lexicon.segment(norm):
        if w in STOP or w in lexicon.self_words or not re.search(f"[{CJK}0-9a-z]", w):
            continue
        if len(w) == 1:  # a lone character or digit names no topic ("alert(1)", "3、1、5")
            continue
        words.append(w)
    return tuple(dict.fromkeys(words))


def refers_back(text: str, norm: str, terms: tuple[str, ...], script: str, history, lexicon: Lexicon) -> bool:
    """A question that needs the conversation: it points back (那个, 其中, 它, …呢, it, that…), or it is short and
    names no topic of the corpus ("规模多大？")."""
    if not history:
        return False
    if _REFERS_BACK.search(norm) or _REFERS_BACK.search(text):
        return True
    short = len(norm) <= 8 if script != "en" else len(text.split()) <= 4
    return short and not [t for t in terms if lexicon.has(t)]


def _about(norm: str, terms: tuple[str, ...], asks: str, names_doc: bool, lexicon: Lexicon) -> str:
    """What a question asks of the document as a whole, or ''. A summary or structure only when it names no topic
    of the corpus; "who gave it" only when it names the document and nothing else."""
    topical = [t for t in terms if lexicon.has(t)]
    if asks == "person" and names_doc and not topical:
        return "speaker"
    for key in ("start", "end"):
        if _ABOUT_RE[key].search(norm):
            return key
    if topical or (terms and not names_doc):
        return ""
    return next((k for k in ("structure", "summary") if _ABOUT_RE[k].search(norm)), "")


def split_parts(norm: str, script: str, lexicon: Lexicon) -> list[str]:
    """"平台和人才方面分别有什么举措" → ["平台有什么举措", "人才有什么举措"]: each part's topic with the shared frame."""
    if not _RESPECTIVELY.search(norm):
        return []
    pieces = [p for p in _PART_SPLIT.split(_RESPECTIVELY.sub("", norm)) if p]
    topical = [i for i, p in enumerate(pieces) if content_terms(p, script, lexicon)]
    if len(topical) < 2:
        return []
    last = topical[-1]
    words = lexicon.segment(pieces[last])
    own = set(content_terms(pieces[last], script, lexicon))
    cut = max((i for i, w in enumerate(words) if w in own), default=len(words) - 1) + 1
    frame = "".join(words[cut:]) + "".join(pieces[last + 1:])
    subs = [f"{pieces[i]}{frame}" for i in topical[:-1]] + [f"{''.join(words[:cut])}{frame}"]
    return subs[:MAX_PARTS]


def retrieval_text(text: str, context: tuple[str, ...], added: tuple[str, ...]) -> str:
    """What retrieval searches with: the question, the topic a follow-up carries from the conversation, and the
    corpus's terms its words stand for."""
    return " ".join(dict.fromkeys(p for p in [text, *context, *added] if p))


def analyse(text: str, history, lexicon: Lexicon, *, state=None, with_parts: bool = True) -> Question:
    """The one analysis of a question (its history: earlier [user, assistant] turns, oldest first; `state`: what
    the conversation carries, rag.conversation.State, whose topic a follow-up takes)."""
    history = tuple((str(u), str(a)) for u, a in (history or ()))
    raw = text
    text, injected = strip_injection(" ".join(_MARKUP.sub(" ", text).split()))
    # a question with no words (emoji, punctuation, bare markup) is answered in the page's language, not English
    wordless = not re.search(f"[{CJK}]", text) and len(re.findall(r"[A-Za-z]{2,}", text)) < 2
    script = "hans" if wordless else detect_script(text)
    norm = full_years(normalize(to_simplified_question(text)))
    # English is matched with its spaces (normalize removes them); Chinese in its normalised form
    shape = f"{norm} {' '.join(text.lower().split())}" if script == "en" else norm
    terms = content_terms(norm, script, lexicon)
    only = injected and not (terms and (re.search(f"[{CJK}]{{2}}", text) or len(text.split()) >= 3))
    added = list(lexicon.english_terms(text)) if script == "en" else []
    added += [t for t in lexicon.expand(norm) if t not in added]
    added += [t for t in lexicon.repair(norm, terms) if t not in added]
    added_t = tuple(t for t in dict.fromkeys(added) if t not in terms)
    asks = asks_kind(shape)
    names_doc = bool(_DOC_WORDS.search(shape)) or any(w in norm for w in lexicon.doc_names if len(w) >= 2)
    refers = refers_back(text, shape, terms + added_t, script, history, lexicon)
    context, topic_span = (), None
    if refers and state is not None:
        context = tuple(t for t in state.topic if t not in terms)
        topic_span = state.topic_span
    elif refers:  # no state given: the previous question's words
        prev = history[-1][0]
        context = tuple(t for t in content_terms(normalize(to_simplified_question(prev)), detect_script(prev), lexicon)
                        if t not in terms)
    parts = ()
    if with_parts:
        parts = tuple(analyse(p, (), lexicon, with_parts=False) for p in split_parts(norm, script, lexicon))
    return Question(
        raw=raw, text=text if not only else "", norm=norm, script=script, terms=terms, added=added_t, context=context,
        asks=asks, attribute=m.group(0) if (m := _ATTRIBUTE.search(norm)) else "",
        focus=focus_words(norm, lexicon) if script != "en" else (), specific=bool(_SPECIFIC.search(shape)),
        wants_list=bool(_LIST.search(shape)), wants_count=bool(_COUNT_ASK.search(shape)),
        definition=bool(_DEFINITION.search(shape)), purpose=bool(_PURPOSE.search(shape)),
        yesno=bool(_YESNO.search(shape)), mentions=bool(_MENTIONS.search(shape)), count=asked_count(norm),
        ordinal=ordinal(shape), items=item_range(shape), asks_section=bool(_WHICH_PART.search(shape)), about=_about(shape, terms, asks, names_doc, lexicon), names_document=names_doc,
        besides=bool(_BESIDES.search(shape)) and bool(history), refers_back=refers, injection=injected,
        topic_span=topic_span, state=state, documents=lexicon.documents_named(norm),
        injection_only=only, parts=parts, history=history,
        query=retrieval_text(text, context, added_t))
