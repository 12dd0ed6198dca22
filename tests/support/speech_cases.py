"""The speech filter's test cases: a corpus of answers and what a caller should hear of each,
rules one case each, and the ways an answer can be split into streamed pieces."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

CORPUS: dict[str, tuple[str, str]] = {
    "en_bullets": (
        "Sure! Here are three tips for better sleep 😴:\n\n"
        "- **Keep a schedule**: go to bed at the same time every day.\n"
        "- *Limit screens* an hour before bed.\n"
        "- Avoid caffeine after 2 p.m. ☕\n\n"
        "Sweet dreams! 🌙✨",
        "Sure! Here are three tips for better sleep:\n"
        "Keep a schedule: go to bed at the same time every day.\n"
        "Limit screens an hour before bed.\n"
        "Avoid caffeine after 2 p.m.\n"
        "Sweet dreams!",
    ),
    "zh_headings": (
        "## 退货政策\n\n"
        "您好！关于退货，请注意以下几点：\n\n"
        "1. **时间限制**：收货后 7 天内可申请退货。\n"
        "2. **商品状态**：商品需保持完好，*不影响二次销售*。\n"
        "3. 运费：非质量问题由买家承担。\n\n"
        "### 温馨提示\n"
        "如有疑问，请随时联系客服😊。",
        "退货政策\n"
        "您好！关于退货，请注意以下几点：\n"
        "1. 时间限制：收货后 7 天内可申请退货。\n"
        "2. 商品状态：商品需保持完好，不影响二次销售。\n"
        "3. 运费：非质量问题由买家承担。\n"
        "温馨提示\n"
        "如有疑问，请随时联系客服。",
    ),
    "en_table": (
        "Here is a comparison of our plans:\n\n"
        "| Plan | Price | Calls |\n"
        "|:-----|------:|:-----:|\n"
        "| Basic | $5/month | 100 |\n"
        "| **Pro** | $20/month | Unlimited |\n\n"
        "Most customers pick Pro.",
        "Here is a comparison of our plans:\n"
        "Plan, Price, Calls\n"
        "Basic, $5/month, 100\n"
        "Pro, $20/month, Unlimited\n"
        "Most customers pick Pro.",
    ),
    "zh_table": (
        "| 城市 | 天气 | 气温 |\n"
        "| --- | --- | --- |\n"
        "| 北京 | 晴 ☀️ | 25°C |\n"
        "| 上海 | 小雨 🌧️ | 22°C |",
        "城市，天气，气温\n北京，晴，25°C\n上海，小雨，22°C",
    ),
    "en_links_images": (
        "You can read more in the [official guide](https://example.com/guide_(v2)?a=1&b=2) "
        "or watch the video below:\n\n"
        "![Setup diagram](https://example.com/img/setup.png)\n\n"
        'Questions? See [our FAQ](https://example.com/faq "FAQ").',
        "You can read more in the official guide or watch the video below:\nQuestions? See our FAQ.",
    ),
    "en_inline_links_and_urls": (
        "Check the status at https://status.example.com or read "
        "**[this article](https://blog.example.com/post_1)** about it — it's short.",
        "Check the status at https://status.example.com or read this article about it — it's short.",
    ),
    "en_code": (
        "To read a file in Python, use `open()` with a `with` block:\n\n"
        "```python\n"
        "with open(file_name) as f:\n"
        "    data = f.read()\n"
        "```\n\n"
        "The `file_name` variable holds the path.",
        "To read a file in Python, use open() with a with block:\n"
        "with open(file_name) as f:\n"
        "data = f.read()\n"
        "The file_name variable holds the path.",
    ),
    "think_closed": (
        "<think>\nThe user asks about the weather. I should answer **briefly**.\n</think>\n\n"
        "It's sunny in Beijing today, around 25°C.",
        "It's sunny in Beijing today, around 25°C.",
    ),
    "think_empty_zh": (
        "<think>\n\n</think>\n\n您好，我是智能客服小云，请问有什么可以帮您？",
        "您好，我是智能客服小云，请问有什么可以帮您？",
    ),
    "think_unclosed": (
        "<think>The order number is **A123**; I need to look it up in the database and the tool call failed",
        "",
    ),
    "think_tag_in_prose": (  # a <think> a model writes about is not its reasoning
        "The model emits a <think> tag before it reasons. **Your refund is approved.**",
        "The model emits a <think> tag before it reasons. Your refund is approved.",
    ),
    "think_prefilled_orphan_close": (  # the chat template wrote <think>: only </think> shows
        "Okay, the user asks about the refund. Policy says **14 days**; it is day 3.\n</think>\n\n"
        "Your refund is approved.",
        "Your refund is approved.",
    ),
    "symbols_that_mean_something": (
        "Rated ★★★★☆ by 120 guests.\n✓ Free parking ✗ No pets\nI ♥ NY ➜ turn left ⚠ slippery 🎉",
        "Rated ★★★★☆ by 120 guests.\n✓ Free parking ✗ No pets\nI ♥ NY ➜ turn left ⚠ slippery",
    ),
    "identifiers_and_arithmetic": (
        "# of items: 3\nCall `__init__` or __init__ first; 5 *3 = 15 and 5* 3 = 15. See [the policy](section 4"
        " of the handbook) for details.",
        "# of items: 3\nCall __init__ or __init__ first; 5 *3 = 15 and 5* 3 = 15. See the policy (section 4"
        " of the handbook) for details.",
    ),
    "ims_hangup": (
        '感谢您的来电，祝您生活愉快，再见！👋<imsagent_hangup endword="再见"/>',
        '感谢您的来电，祝您生活愉快，再见！<imsagent_hangup endword="再见"/>',
    ),
    "ims_transfer_en": (
        "Sure, I'll transfer you to a human agent now. "
        '<imsagent_transfer_call number="*_1001_*" reason="user_request **urgent**"/>',
        "Sure, I'll transfer you to a human agent now. "
        '<imsagent_transfer_call number="*_1001_*" reason="user_request **urgent**"/>',
    ),
    "ims_transfer_zh": (
        '好的，正在为您转接**人工客服**，请稍候～<imsagent_transfer_call number="10086" type="human_agent"/>',
        '好的，正在为您转接人工客服，请稍候～<imsagent_transfer_call number="10086" type="human_agent"/>',
    ),
    "math_and_identifiers": (
        "The result is 3 * 4 = 12, and 2*3 = 6. Rename my_old_var to new_value in config_file.py; "
        "the price is $5 (about ~5 euros), e.g. at 10:30 in C# or F#. "
        "Details: https://example.com/docs/snake_case_page and 5 - 3 = 2 :-) ^_^",
        "The result is 3 * 4 = 12, and 2*3 = 6. Rename my_old_var to new_value in config_file.py; "
        "the price is $5 (about ~5 euros), e.g. at 10:30 in C# or F#. "
        "Details: https://example.com/docs/snake_case_page and 5 - 3 = 2 :-) ^_^",
    ),
    "quote_strike_rule": (
        "> **Tip:** Restart the router first.\n"
        "> - unplug it\n"
        "> - wait 10 seconds\n\n"
        "---\n\n"
        "The old price was ~~$30~~ **$25**.\n\n"
        "***\n"
        "Hope this helps!",
        "Tip: Restart the router first.\nunplug it\nwait 10 seconds\nThe old price was $30 $25.\nHope this helps!",
    ),
    "emoji_zoo": (
        "Our whole family 👨‍👩‍👧‍👦 loves it! Made in 🇨🇳 with ❤️ and shipped to 🏴󠁧󠁢󠁳󠁣󠁴󠁿 too.\n"
        "Rated 5/5 👍🏽⭐⭐⭐⭐⭐\n"
        "1️⃣ Order online ✅\n"
        "2️⃣ Pick it up 🏴‍☠️🙌\n"
        "It costs €20, about 100% of the list price, © 2024 Acme™, 30° warm.",
        "Our whole family loves it! Made in with and shipped to too.\n"
        "Rated 5/5\n"
        "1 Order online\n"
        "2 Pick it up\n"
        "It costs €20, about 100% of the list price, © 2024 Acme™, 30° warm.",
    ),
    "nested_list": (
        "### Steps\n"
        "1. Open **Settings**\n"
        "   - Tap *Network*\n"
        "     * Choose Wi-Fi\n"
        "2. Enter the password\n"
        "+ Optional: restart\n"
        "#hashtag stays, and so does C#.",
        "Steps\n1. Open Settings\nTap Network\nChoose Wi-Fi\n2. Enter the password\nOptional: restart\n"
        "#hashtag stays, and so does C#.",
    ),
    "zh_bold_emoji": (
        "好的😊！这是**重点**内容：请使用__Python 3.11__编程，~~不要~~用旧版本。"
        "价格是￥99（约$14），活动截止到10:30。🎉🎉",
        "好的！这是重点内容：请使用Python 3.11编程，不要用旧版本。价格是￥99（约$14），活动截止到10:30。",
    ),
    "plain_english": (
        "Your appointment is confirmed for Tuesday at 10:30 a.m. The total is $45.50, "
        "including tax. Is there anything else I can help you with?",
        "Your appointment is confirmed for Tuesday at 10:30 a.m. The total is $45.50, "
        "including tax. Is there anything else I can help you with?",
    ),
    "headings_br_note": (
        "# 📦 Order Status\n"
        "**Note:** Your order #12345 has shipped.<br>Expected delivery: Friday.\n\n"
        "| Item | Qty |\n|---|---|\n| USB-C cable<br>1 m | 2 |",
        "Order Status\nNote: Your order #12345 has shipped.\nExpected delivery: Friday.\n"
        "Item, Qty\nUSB-C cable\n1 m, 2",
    ),
}


ANSWERS = [answer for answer, _ in CORPUS.values()]


# Small cases, one rule each.
RULES = [
    # emphasis and strike
    ("**bold** *it* __b c__ _i_ ~~s~~ ***both***", "bold it b c i s both"),
    ("5 *3, 5* 3, 5 * 3, 5*3 and 2 *x*", "5 *3, 5* 3, 5 * 3, 5*3 and 2 x"),
    ("__init__, __name__ and self.__dict__ in __init__.py", "__init__, __name__ and self.__dict__ in __init__.py"),
    ("__bold text__ and __Python 3__", "bold text and Python 3"),
    ("__" + "a" * 30 + "__ is too long for a name", "a" * 30 + " is too long for a name"),
    ("这是**重点**内容，*斜体*也行", "这是重点内容，斜体也行"),
    ("**Note:** text (**in brackets**) **“quoted”**", "Note: text (in brackets) “quoted”"),
    ("3 * 4 = 12, 2*3, x**2, a * b", "3 * 4 = 12, 2*3, x**2, a * b"),
    ("snake_case_words, file_name, my_var2 and ~5 minutes", "snake_case_words, file_name, my_var2 and ~5 minutes"),
    ("^_^ -_- >_< T_T o_O ¯\\_(ツ)_/¯ (*) :-) ;) <3 :P XD", "^_^ -_- >_< T_T o_O ¯\\_(ツ)_/¯ (*) :-) ;) <3 :P XD"),
    ("$5, C#, e.g., 10:30, 5 - 3, 50%", "$5, C#, e.g., 10:30, 5 - 3, 50%"),
    # inline code keeps its text, literally
    ("use `snake_case`, `**kwargs` and `<think>` tags", "use snake_case, **kwargs and <think> tags"),
    ("``double `tick` code``", "double tick code"),
    # headings, lists, quotes, rules, fences
    ("# Title\n## Sub title\n###### Six\n#", "Title\nSub title\nSix"),
    ("# of items: 3\n#  of\n## of them", "# of items: 3\n# of\nof them"),
    ("#hashtag, #1 and ####### seven", "#hashtag, #1 and ####### seven"),
    ("- a\n* b\n+ c\n  - nested\n\t* tabbed\n• dot", "a\nb\nc\nnested\ntabbed\ndot"),
    ("1. one\n2) two\n10. ten", "1. one\n2) two\n10. ten"),
    ("-5 degrees\n--verbose\n+86 138\n->next", "-5 degrees\n--verbose\n+86 138\n->next"),
    ("> quoted\n>> nested\n> - item\n> ## head", "quoted\nnested\nitem\nhead"),
    ("a\n---\nb\n***\nc\n___\nd\n- - -\ne\n* * * *", "a\nb\nc\nd\ne"),
    ("```js\nx = 1\n```\n~~~\ny\n~~~", "x = 1\ny"),
    ("```inline code```", "inline code"),
    # links and images
    ("[text](https://a.b/c_(d)) end", "text end"),
    ('[link](https://a.b "title") end', "link end"),
    ("see ![alt text](x.png) end", "see end"),
    ("[1] and [a] b, [x] (y)", "[1] and [a] b, [x] (y)"),
    ("[the policy](section 4 of it) says", "the policy (section 4 of it) says"),
    ("[the policy](section 4\nof it", "the policy (section 4\nof it"),
    ("[the policy](https://x.io/a", "the policy (https://x.io/a"),
    ("![chart](see below) ok", "!chart (see below) ok"),
    ("[docs](https://example.com/" + "a" * 80 + ") end", "docs end"),
    ("[docs](https://example.com/" + "a" * 80 + " \"The title\") end", "docs end"),
    ("[docs](https://example.com/" + "a" * 80 + " and more words", "docs and more words"),
    ("![" + "b" * 70 + "](x.png) end", "![" + "b" * 70 + "](x.png) end"),  # too long for an image
    # tables
    ("| a | b |\n|---|:-:|\n| 1 | 2 |", "a, b\n1, 2"),
    ("| 名称 | 价格 |\n| --- | --- |\n| 苹果 | 5元 |", "名称，价格\n苹果，5元"),
    ("| Note: | x | - |", "Note: x"),
    ("a | b", "a | b"),
    # tags
    ("one<br>two<br/>three<BR />four", "one\ntwo\nthree\nfour"),
    ("a < b and c<d, x<br", "a < b and c<d, x<br"),
    ("<think>plan</think>Answer", "Answer"),
    ("\n  <think>plan</think>\n\n# Answer", "Answer"),
    ("<think>plan</think> Answer </think> <think> ok", "Answer </think> <think> ok"),
    ("Answer <think>never **closed**", "Answer <think>never closed"),
    ("use <think> and </think> tags", "use <think> and </think> tags"),
    ("stray </think>end", "end"),
    ("a `</think>` in code is text", "a </think> in code is text"),
    ('再见<imsagent_hangup endword="再见"/>', '再见<imsagent_hangup endword="再见"/>'),
    ('<imsagent_transfer_call to="*_1_*" note="a > b"/> **ok**',
     '<imsagent_transfer_call to="*_1_*" note="a > b"/> ok'),
    (  # the documented transfer syntax: unquoted values, comma-separated
        '<imsagent_transfer_call callee=10086, err_msg=转接失败, msg=正在为您转接"人工"客服/>**好的**',
        '<imsagent_transfer_call callee=10086, err_msg=转接失败, msg=正在为您转接"人工"客服/>好的',
    ),
    # emoji out, symbols and CJK punctuation in
    ("Hi 👋 there", "Hi there"),
    ("👨‍👩‍👧‍👦🇨🇳👍🏽❤️🏳️‍🌈", ""),
    ("1️⃣ one #️⃣", "1 one #"),
    ("完成🎉！好的😊我来", "完成！好的我来"),
    ("Great🎉Thanks, sleep 😴: ok", "Great Thanks, sleep: ok"),
    ("© ® ™ € ° % ℃ → ❶", "© ® ™ € ° % ℃ → ❶"),
    ("★☆ ✓ ✔ ✗ ✘ ☑ ♥ ♡ ♠ ♪ ☎ ✉ ✈ ⚠ ➜ ➔ ⬅ ☀ ☺", "★☆ ✓ ✔ ✗ ✘ ☑ ♥ ♡ ♠ ♪ ☎ ✉ ✈ ⚠ ➜ ➔ ⬅ ☀ ☺"),
    ("❤️ ☀️ ✔️ ✅ ❌ ⭐ ✨ ☕ ⚡ ➕ ✌🏽 ❤\u200d🔥 ok", "ok"),
    ("I ❤︎ NY, I ♥ it", "I ❤ NY, I ♥ it"),
    ("。，！？、：；「」【】（）～", "。，！？、：；「」【】（）～"),
    ("क्\u200dष", "क्\u200dष"),
    # whitespace
    ("  lots   of    space  ", "lots of space"),
    ("para one\n\n\n\npara two\r\nthree\tfour", "para one\npara two\nthree four"),
    ("  \n\n", ""),
]


@st.composite
def splits(draw: st.DrawFn, text: str) -> list[str]:
    """`text` cut at random places, or into random pieces of 1 to 8 characters."""
    if draw(st.booleans()):
        cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=30))))
    else:
        cuts, at = [], 0
        while at < len(text):
            at += draw(st.integers(1, 8))
            cuts.append(at)
    bounds = [0, *cuts, len(text)]
    return [text[start:end] for start, end in itertools.pairwise(bounds)]


MARKDOWNISH = st.lists(
    st.one_of(
        st.sampled_from([
            "**", "*", "_", "__", "~~", "~", "`", "```", "```py\n", "[", "]", "](", "(", ")", "![", "!",
            "<think>", "</think>", "<thi", "<", ">", "<br>", '<imsagent_hangup endword="x*_y>z"/>', '"',
            "#", "## ", "- ", "* ", "+ ", "> ", "1. ", "\n", "\n\n", "|", " | ", "|---|", ":---:", "---", "***",
            "😀", "\u200d", "👍🏽", "🇨🇳", "❤️", "\ufe0f", "word", "snake_case", "3 * 4", "2*3", "你好", "。",
            " ", "  ", "\t", "\r\n", "http://x.io/a_b", "$5", "C#", "^_^", "a" * 70,
            # the cases of issue 20
            "★", "✓", "♥", "❤", "\ufe0e", "🏽", "__init__", "__x", "5 *3", "5* 3", "# of", "[a](b c)", '"t"',
            "](http://x.io/" + "p" * 60, "<BR/>", "<br  />", "a" * 62,
        ]),
        st.text(max_size=3),
    ),
    max_size=40,
).map("".join)


# Realistic model answers and exactly what the caller should hear.
