<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>AmountPage</name>
    <message>
        <source>Another amount (%1)</source>
        <translation>其他金额（%1）</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>How much?</source>
        <extracomment>Preset amounts in major units of the terminal&apos;s currency (those above the balance hide). The pad&apos;s keys are a little lower than other buttons, so pad and presets fit side by side on a 1080-pixel-high landscape screen (still above theme.MIN_TOUCH).</extracomment>
        <translation>使用多少金额？</translation>
    </message>
    <message>
        <source>OK</source>
        <translation>确定</translation>
    </message>
</context>
<context>
    <name>CardPage</name>
    <message>
        <source>Balance</source>
        <translation>余额</translation>
    </message>
    <message>
        <source>Card %1</source>
        <translation>卡号 %1</translation>
    </message>
    <message>
        <source>Done</source>
        <translation>完成</translation>
    </message>
    <message>
        <source>Speak again</source>
        <translation>再读一遍</translation>
    </message>
    <message>
        <source>Use this card</source>
        <translation>使用这张卡</translation>
    </message>
</context>
<context>
    <name>CashierWindow</name>
    <message>
        <source>Working…</source>
        <translation>处理中…</translation>
    </message>
    <message>
        <source>Printing…</source>
        <translation>正在打印…</translation>
    </message>
    <message>
        <source>Z report</source>
        <translation>Z 报表</translation>
    </message>
    <message>
        <source>Printed.</source>
        <translation>已打印。</translation>
    </message>
    <message>
        <source>Not printed: %1</source>
        <translation>未打印：%1</translation>
    </message>
    <message>
        <source>cardpos — cashier</source>
        <translation>cardpos — 收银</translation>
    </message>
</context>
<context>
    <name>CodeDialog</name>
    <message>
        <source>One-time code</source>
        <translation>一次性验证码</translation>
    </message>
</context>
<context>
    <name>ConfirmPage</name>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Confirm</source>
        <translation>确认</translation>
    </message>
    <message>
        <source>Take %1 from card %2?</source>
        <translation>从卡 %2 扣除 %1？</translation>
    </message>
</context>
<context>
    <name>DonePage</name>
    <message>
        <source>Done</source>
        <translation>完成</translation>
    </message>
    <message>
        <source>Sorry, that did not work.</source>
        <translation>抱歉，操作未成功。</translation>
    </message>
</context>
<context>
    <name>KioskWindow</name>
    <message>
        <source>No receipt printer here.</source>
        <extracomment>A quote declined only for these still shows the card: ask for a plain inquiry instead.</extracomment>
        <translation>此处没有收据打印机。</translation>
    </message>
    <message>
        <source>Please take your receipt.</source>
        <translation>请取走您的收据。</translation>
    </message>
    <message>
        <source>Printing your receipt…</source>
        <translation>正在打印收据…</translation>
    </message>
    <message>
        <source>Staff only: a supervisor&apos;s id and PIN close the kiosk.</source>
        <translation>仅限员工：输入主管编号和密码以关闭自助机。</translation>
    </message>
    <message>
        <source>The receipt could not be printed. Please ask a member of staff.</source>
        <translation>收据无法打印，请咨询工作人员。</translation>
    </message>
    <message>
        <source>cardpos — kiosk</source>
        <translation>cardpos — 自助机</translation>
    </message>
</context>
<context>
    <name>LoginPage</name>
    <message>
        <source>Continue the shift of %1</source>
        <translation>继续 %1 的班次</translation>
    </message>
    <message>
        <source>Cashier login</source>
        <translation>收银员登录</translation>
    </message>
    <message>
        <source>Cashier id</source>
        <translation>收银员编号</translation>
    </message>
    <message>
        <source>PIN</source>
        <translation>PIN</translation>
    </message>
    <message>
        <source>Continue shift</source>
        <translation>继续班次</translation>
    </message>
    <message>
        <source>Open shift</source>
        <translation>开始班次</translation>
    </message>
</context>
<context>
    <name>PinDialog</name>
    <message>
        <source>PIN</source>
        <translation>PIN</translation>
    </message>
</context>
<context>
    <name>PresentPage</name>
    <message>
        <source>Back</source>
        <translation>返回</translation>
    </message>
    <message>
        <source>Check my card</source>
        <translation>查询我的卡</translation>
    </message>
    <message>
        <source>Reading your card…</source>
        <translation>正在读取您的卡…</translation>
    </message>
    <message>
        <source>Tap your card or show its QR code</source>
        <translation>请刷卡或出示二维码</translation>
    </message>
    <message>
        <source>Use my card</source>
        <translation>使用我的卡</translation>
    </message>
</context>
<context>
    <name>SalePage</name>
    <message>
        <source>No card yet: tap it, scan its code or type its number first.</source>
        <translation>还没有卡片：请先刷卡、扫码或输入卡号。</translation>
    </message>
    <message>
        <source>No receipt printer: the receipt is on screen only.</source>
        <translation>没有收据打印机：凭条仅在屏幕上显示。</translation>
    </message>
    <message>
        <source>Printing…</source>
        <translation>正在打印…</translation>
    </message>
    <message>
        <source>Receipt printed.</source>
        <translation>凭条已打印。</translation>
    </message>
    <message>
        <source>F8 prints it again.</source>
        <translation>按 F8 重新打印。</translation>
    </message>
    <message>
        <source>Receipt not printed (the printer was stopped).</source>
        <translation>凭条未打印（打印机已停止）。</translation>
    </message>
    <message>
        <source>Working…</source>
        <translation>处理中…</translation>
    </message>
    <message>
        <source>Tap a card, scan its QR code, or type the card number and press Enter.</source>
        <translation>请刷卡、扫描二维码，或输入卡号后按回车。</translation>
    </message>
    <message numerus="yes">
        <source>expires %1 (in %n day(s))</source>
        <translation>
            <numerusform>%1 到期（还有 %n 天）</numerusform>
        </translation>
    </message>
    <message>
        <source>no expiry</source>
        <translation>无有效期</translation>
    </message>
    <message>
        <source>PIN</source>
        <translation>PIN</translation>
    </message>
    <message>
        <source>Ready</source>
        <translation>就绪</translation>
    </message>
    <message>
        <source>Receipt</source>
        <translation>凭条</translation>
    </message>
    <message>
        <source>Enter: do it   Esc: next customer   F2 inquiry   F3 redeem   F4 void   F5 top-up   F6 activate   F7 buyback   F8 reprint   F9 shift   F10 sync   F12 lock   Ctrl+L language</source>
        <translation>回车：执行   Esc：下一位顾客   F2 查询   F3 兑换   F4 撤销   F5 充值   F6 激活   F7 回收   F8 重打   F9 班次   F10 同步   F12 锁屏   Ctrl+L 语言</translation>
    </message>
    <message>
        <source>Redeemed %1</source>
        <translation>已兑换 %1</translation>
    </message>
    <message>
        <source>Topped up %1</source>
        <translation>已充值 %1</translation>
    </message>
    <message>
        <source>Activated with %1</source>
        <translation>已激活，充入 %1</translation>
    </message>
    <message>
        <source>Bought back: %1 taken off the card</source>
        <translation>已回收：从卡中扣除 %1</translation>
    </message>
    <message>
        <source>Voided: %1 back on the card</source>
        <translation>已撤销：%1 已退回卡中</translation>
    </message>
    <message>
        <source>Buyback price %1 — Enter to pay it out</source>
        <translation>回收价 %1 — 按回车键付款</translation>
    </message>
    <message>
        <source>Card OK</source>
        <translation>卡片正常</translation>
    </message>
    <message>
        <source>Card number</source>
        <translation>卡号</translation>
    </message>
    <message>
        <source>Amount to redeem (%1)</source>
        <translation>兑换金额（%1）</translation>
    </message>
    <message>
        <source>Amount to top up (%1)</source>
        <translation>充值金额（%1）</translation>
    </message>
    <message>
        <source>First amount to load (%1), or Enter for none</source>
        <translation>首次充值金额（%1），不充值请直接按回车</translation>
    </message>
    <message>
        <source>Buyback: press Enter to pay out the price (%1)</source>
        <translation>回收：按回车键支付回收价（%1）</translation>
    </message>
    <message>
        <source>active</source>
        <translation>有效</translation>
    </message>
    <message>
        <source>not activated</source>
        <translation>未激活</translation>
    </message>
    <message>
        <source>frozen</source>
        <translation>已冻结</translation>
    </message>
    <message>
        <source>reported lost</source>
        <translation>已挂失</translation>
    </message>
    <message>
        <source>closed</source>
        <translation>已关闭</translation>
    </message>
</context>
<context>
    <name>ShiftDialog</name>
    <message>
        <source>Z report</source>
        <translation>Z 报表</translation>
    </message>
    <message>
        <source>Shift</source>
        <translation>班次</translation>
    </message>
    <message>
        <source>Your PIN, to close the shift</source>
        <translation>输入您的 PIN 以结束班次</translation>
    </message>
    <message>
        <source>Close shift</source>
        <translation>结束班次</translation>
    </message>
    <message>
        <source>Print</source>
        <translation>打印</translation>
    </message>
    <message>
        <source>Done</source>
        <translation>完成</translation>
    </message>
    <message>
        <source>Back</source>
        <translation>返回</translation>
    </message>
</context>
<context>
    <name>SimulatorPanel</name>
    <message>
        <source>Device simulator</source>
        <translation>设备模拟器</translation>
    </message>
    <message>
        <source>Demo cards</source>
        <translation>演示卡</translation>
    </message>
    <message>
        <source>Devices and network</source>
        <translation>设备与网络</translation>
    </message>
    <message>
        <source>Tap the card on the reader</source>
        <translation>在读卡器上刷卡</translation>
    </message>
    <message>
        <source>Take the card away</source>
        <translation>移开卡片</translation>
    </message>
    <message>
        <source>Show its QR code to the camera</source>
        <translation>向摄像头出示二维码</translation>
    </message>
    <message>
        <source>Show the same QR code again</source>
        <translation>再次出示同一个二维码</translation>
    </message>
    <message>
        <source>Plug the reader in</source>
        <translation>连接读卡器</translation>
    </message>
    <message>
        <source>Unplug the reader</source>
        <translation>拔出读卡器</translation>
    </message>
    <message>
        <source>Load paper</source>
        <translation>装入纸张</translation>
    </message>
    <message>
        <source>Printer out of paper</source>
        <translation>打印机缺纸</translation>
    </message>
    <message>
        <source>Restore the network</source>
        <translation>恢复网络</translation>
    </message>
    <message>
        <source>Cut the network</source>
        <translation>断开网络</translation>
    </message>
    <message>
        <source>Cashier %1, PIN %2. Supervisor %3, PIN %4. PIN of the PIN card: %5.</source>
        <translation>收银员 %1，PIN %2。主管 %3，PIN %4。带密码卡的 PIN：%5。</translation>
    </message>
</context>
<context>
    <name>StartPage</name>
    <message>
        <source>Check my card</source>
        <translation>查询我的卡</translation>
    </message>
    <message>
        <source>Hold your card on the reader, or show the QR code on your card or phone to the camera.</source>
        <translation>请将卡片放在读卡器上，或将卡片或手机上的二维码对准摄像头。</translation>
    </message>
    <message>
        <source>Tap your card or show its QR code</source>
        <translation>请刷卡或出示二维码</translation>
    </message>
    <message>
        <source>Use my card</source>
        <translation>使用我的卡</translation>
    </message>
</context>
<context>
    <name>StatusLine</name>
    <message>
        <source>Receiving cards: %1</source>
        <translation>正在接收卡片：%1</translation>
    </message>
    <message>
        <source>Stop for now</source>
        <translation>暂停</translation>
    </message>
    <message>
        <source>Standalone</source>
        <translation>单机</translation>
    </message>
    <message>
        <source>Online</source>
        <translation>在线</translation>
    </message>
    <message>
        <source>Offline</source>
        <translation>离线</translation>
    </message>
    <message numerus="yes">
        <source>To sync: %n</source>
        <translation>
            <numerusform>待同步：%n</numerusform>
        </translation>
    </message>
    <message>
        <source>Last sync %1</source>
        <translation>上次同步 %1</translation>
    </message>
    <message>
        <source>Never synced</source>
        <translation>从未同步</translation>
    </message>
    <message>
        <source>Reader</source>
        <translation>读卡器</translation>
    </message>
    <message>
        <source>Camera</source>
        <translation>摄像头</translation>
    </message>
    <message>
        <source>Printer</source>
        <translation>打印机</translation>
    </message>
</context>
<context>
    <name>SupervisorDialog</name>
    <message>
        <source>Supervisor</source>
        <translation>主管</translation>
    </message>
</context>
<context>
    <name>VoidDialog</name>
    <message>
        <source>Void a redemption</source>
        <translation>撤销兑换</translation>
    </message>
    <message>
        <source>Choose the redemption to reverse; a supervisor approves it.</source>
        <translation>请选择要撤销的兑换，需主管批准。</translation>
    </message>
    <message>
        <source>Nothing to void: no recent redemption in this shift.</source>
        <translation>没有可撤销的交易：本班次没有最近的兑换。</translation>
    </message>
</context>
<context>
    <name>Words</name>
    <message>
        <source>%1 season rate</source>
        <translation>%1 季节费率</translation>
    </message>
    <message>
        <source>%1 was taken from your card.</source>
        <translation>已从您的卡中扣除 %1。</translation>
    </message>
    <message>
        <source>Expired on %1.</source>
        <translation>已于 %1 过期。</translation>
    </message>
    <message>
        <source>No expiry date.</source>
        <translation>无有效期限制。</translation>
    </message>
    <message>
        <source>This card cannot be read safely. Please keep it and ask a member of staff.</source>
        <translation>无法安全读取这张卡。请保留卡片并咨询工作人员。</translation>
    </message>
    <message>
        <source>This card is blocked. Please keep it and ask a member of staff.</source>
        <translation>这张卡已被停用。请保留卡片并咨询工作人员。</translation>
    </message>
    <message>
        <source>This card was reported lost. Please keep it and ask a member of staff.</source>
        <extracomment>Reasons after which the holder must not get the card&apos;s balance, only &quot;see staff&quot;.</extracomment>
        <translation>这张卡已挂失。请保留卡片并咨询工作人员。</translation>
    </message>
    <message numerus="yes">
        <source>Valid until %1. %n day(s) left.</source>
        <translation>
            <numerusform>有效期至 %1，还剩 %n 天。</numerusform>
        </translation>
    </message>
    <message>
        <source>We can buy this card back for %1 at the counter (%2: %3% of the balance).</source>
        <translation>可在柜台以 %1 回收这张卡（%2：余额的 %3%）。</translation>
    </message>
    <message>
        <source>Your balance is %1.</source>
        <translation>您的余额为 %1。</translation>
    </message>
    <message>
        <source>Your balance is now %1.</source>
        <translation>您现在的余额为 %1。</translation>
    </message>
    <message>
        <source>standard rate</source>
        <translation>标准费率</translation>
    </message>
</context>
<context>
    <name>_Question</name>
    <message>
        <source>Supervisor id</source>
        <translation>主管编号</translation>
    </message>
    <message>
        <source>PIN</source>
        <translation>PIN</translation>
    </message>
    <message>
        <source>Code</source>
        <translation>验证码</translation>
    </message>
</context>
</TS>
