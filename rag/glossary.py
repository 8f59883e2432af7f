"""A small English ↔ Chinese glossary of the policy domain: English questions get Chinese retrieval terms
(lexical search finds nothing for English otherwise), and English answers get English topic names."""
from __future__ import annotations

import re

# English phrase (regex, lower case) → Simplified Chinese terms used in the documents.
EN_TO_ZH: list[tuple[str, tuple[str, ...]]] = [
    (r"sci[- ]?tech index loan|index loan|technology index loan", ("科创指数贷",)),
    (r"securiti[sz]ation|ip[- ]backed|intellectual property", ("技术产权证券化",)),
    (r"innovation fund|venture fund|sci[- ]?tech fund|\bfund", ("科创基金",)),
    (r"\bloans?\b|\bcredit\b|borrow", ("科创指数贷", "金融")),
    (r"financ|\bbank|capital|money", ("科技金融", "金融活水")),
    (r"oujiang|flagship lab|laborator|\blabs?\b", ("瓯江实验室", "实验室")),
    (r"state key lab|national key lab", ("国家重点实验室",)),
    (r"talent|people|expert|scientist|researcher|recruit|attract", ("人才",)),
    (r"young scientists? summit|summit", ("世界青年科学家峰会", "峰会")),
    (r"universit|college|higher education", ("高水平大学建设",)),
    (r"incubat|start[- ]?up", ("孵化", "大孵化集群")),
    (r"r&d|research and development|research institut|new[- ]type", ("研发", "新型研发机构")),
    (r"jiebang|guashuai|open competition|list[- ]and[- ]lead|challenge", ("揭榜挂帅",)),
    (r"key technolog|core technolog|breakthrough|bottleneck", ("核心技术攻关",)),
    (r"commerciali[sz]|transfer of (research )?results|research results|achievements", ("科技成果转化",)),
    (r"platform", ("平台", "科技战略平台建设")),
    (r"eight|8 (key )?(levers|measures|tools|handles|grips)|levers|key measures", ("八大抓手",)),
    (r"enterprise|compan|firm|business", ("企业", "科技企业")),
    (r"forest", ("科技企业森林培育",)),
    (r"digital|online|app\b", ("数字化改革", "科企通")),
    (r"results pool|achievement pool", ("成果池",)),
    (r"kejitong|ke qi tong|service platform", ("科企通",)),
    (r"reform", ("改革",)),
    (r"evaluat|incentive|reward", ("评价激励",)),
    (r"technical (upgrad|transform)|upgrad|retrofit", ("企业技术改造",)),
    (r"315", ("315",)),
    (r"provinc\w*", ("省",)),
    (r"integrat\w*|\bjoin\w*|plug into|align with", ("融入",)),
    (r"(science and technology|sci[- ]?tech|innovation) system", ("科技创新体系",)),
    (r"hub|highland|innovation city", ("创新高地", "国家创新型城市")),
    (r"twentieth|20th|party congress", ("二十大",)),
    (r"8-8 strategy|eight-eight|double eight|88 strategy", ("八八战略",)),
    (r"why.*(year|matter)|this year|anniversary", ("今年", "开局之年")),
    (r"who (gave|made|delivered|wrote|is the speaker)|speaker'?s? name|name of the speaker|author|gu wei|director",
     ("温州市科技局局长顾威",)),
    (r"innovation system|innovation ecosystem", ("创新体系",)),
    (r"innovation|innovative", ("创新",)),
    (r"science|technolog|\btech\b", ("科技",)),
    (r"industr", ("产业",)),
    (r"goal|aim|target|vision", ("国家创新型城市", "创新高地")),
]

# Simplified term → English name, for English lead lines (longest terms first when matching).
ZH_TO_EN: dict[str, str] = {
    "科创指数贷": "the Sci-Tech Index Loan (科创指数贷)",
    "技术产权证券化": "technology property-rights securitisation (技术产权证券化)",
    "科创基金": "the sci-tech innovation fund (科创基金)",
    "科技金融": "technology finance (科技金融)",
    "瓯江实验室": "the Oujiang Laboratory (瓯江实验室)",
    "国家重点实验室": "state key laboratories (国家重点实验室)",
    "世界青年科学家峰会": "the World Young Scientists Summit (世界青年科学家峰会)",
    "揭榜挂帅": "the open-competition \"jiebang guashuai\" mechanism (揭榜挂帅)",
    "科技企业森林培育": "cultivating a \"forest\" of tech enterprises (科技企业森林培育)",
    "八大抓手": "the eight key levers (八大抓手)",
    "一区一廊一会一室一集群": "the \"one zone, one corridor, one summit, one lab, one cluster\" strategy (一区一廊一会一室一集群)",
    "科企通": "the Keqitong service platform (科企通)",
    "成果池": "the results pool (成果池)",
    "人才": "talent (人才)",
    "孵化": "incubation (孵化)",
    "新型研发机构": "new-type R&D institutions (新型研发机构)",
    "核心技术攻关": "breakthroughs in core technologies (核心技术攻关)",
    "数字化改革": "digital reform (数字化改革)",
    "高水平大学建设": "building high-level universities (高水平大学建设)",
    "企业技术改造": "technical upgrading of enterprises (企业技术改造)",
    "315": "the province's \"315\" sci-tech innovation system (315)",
    "八八战略": "the \"8-8 Strategy\" (八八战略)",
    "顾威": "Gu Wei, director of the Wenzhou Science and Technology Bureau (顾威)",
    "科技成果转化": "turning research results into applications (科技成果转化)",
    "国家创新型城市": "a national innovative city (国家创新型城市)",
    "创新高地": "a regional innovation highland (创新高地)",
    "大孵化集群": "large incubation clusters (大孵化集群)",
    "评价激励": "talent evaluation and incentives (评价激励)",
    "开局之年": "the opening year (开局之年)",
    "二十大": "the 20th Party Congress (二十大)",
    "金融活水": "\"living water\" of finance (金融活水)",
    "科技企业": "tech enterprises (科技企业)",
    "实验室": "laboratories (实验室)",
    "峰会": "the summit (峰会)",
    "研发": "R&D (研发)",
    "平台": "innovation platforms (平台)",
    "金融": "finance (金融)",
    "创新": "innovation (创新)",
}


def english_terms(question: str) -> list[str]:
    """Chinese domain terms an English question refers to, in glossary order, without duplicates."""
    q = question.lower()
    out: list[str] = []
    for pattern, terms in EN_TO_ZH:
        if re.search(pattern, q):
            out.extend(t for t in terms if t not in out)
    return out


def english_name(text_simplified: str) -> str:
    """An English name for the most specific glossary term found in a Simplified text ('' when none)."""
    for term in sorted(ZH_TO_EN, key=len, reverse=True):
        if term in text_simplified:
            return ZH_TO_EN[term]
    return ""
