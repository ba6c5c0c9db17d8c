"""A multilingual lexicon of short interface strings: whole lines that are UI furniture or
navigation wherever they stand. Matching is on the whole line, case-folded, with
surrounding punctuation, arrows and counts stripped (see `key`).

Languages: en de fr es it pt nl sv da no fi pl cs ru uk tr ar zh ja ko id vi el hu ro.
"""
from __future__ import annotations

import re
import unicodedata

UI_CHROME = {
    "subscribe": "subscribe|abonnieren|jetzt abonnieren|s'abonner|abonnez-vous|suscribirse|suscríbete|iscriviti|abbonati|"
                 "assinar|assine|abonneren|prenumerera|abonnér|abonner|tilaa|subskrybuj|zaprenumeruj|odebírat|"
                 "подписаться|підписатися|abone ol|اشترك|订阅|購読|登録する|구독|berlangganan|đăng ký|εγγραφή|feliratkozás|abonează-te",
    "share": "share|teilen|partager|compartir|condividi|compartilhar|partilhar|delen|dela|jaa|udostępnij|sdílet|"
             "поделиться|поділитися|paylaş|شارك|مشاركة|分享|共有|シェア|공유|bagikan|chia sẻ|κοινοποίηση|megosztás|distribuie",
    "log in": "log in|login|sign in|log out|logout|sign out|anmelden|einloggen|abmelden|se connecter|connexion|"
              "iniciar sesión|acceder|accedi|entrar|iniciar sessão|inloggen|logga in|log ind|logg inn|kirjaudu|"
              "zaloguj się|zaloguj|přihlásit se|войти|вход|увійти|giriş yap|giriş|تسجيل الدخول|登录|登入|ログイン|로그인|"
              "masuk|đăng nhập|σύνδεση|bejelentkezés|autentificare",
    "register": "register|sign up|create account|registrieren|registrieren sie sich|s'inscrire|inscription|registrarse|"
                "regístrate|registrati|cadastre-se|registreren|registrera|registrer|rekisteröidy|zarejestruj się|"
                "registrovat|зарегистрироваться|регистрация|зареєструватися|kayıt ol|إنشاء حساب|注册|会員登録|회원가입|"
                "daftar|đăng ký tài khoản|εγγραφείτε|regisztráció|înregistrare|log in or register|войти или зарегистрироваться",
    "search": "search|suche|suchen|rechercher|recherche|buscar|búsqueda|cerca|pesquisar|zoeken|sök|søg|søk|hae|"
              "szukaj|hledat|поиск|пошук|بحث|搜索|検索|검색|cari|tìm kiếm|αναζήτηση|keresés|caută",
    "menu": "menu|menü|menú|meny|valikko|меню|القائمة|菜单|メニュー|메뉴|menyu|μενού|meniu|open menu|close menu",
    "close": "close|schließen|fermer|cerrar|chiudi|fechar|sluiten|stäng|luk|lukk|sulje|zamknij|zavřít|закрыть|"
             "закрити|kapat|إغلاق|关闭|閉じる|닫기|tutup|đóng|κλείσιμο|bezárás|închide|×|✕",
    "print": "print|drucken|imprimer|imprimir|stampa|afdrukken|skriv ut|udskriv|tulosta|drukuj|tisk|печать|друк|"
             "yazdır|طباعة|打印|印刷|인쇄|cetak|εκτύπωση|nyomtatás|printează",
    "comments": "comments|kommentare|commentaires|comentarios|commenti|comentários|reacties|kommentarer|kommentit|"
                "komentarze|komentáře|комментарии|коментарі|yorumlar|تعليقات|评论|コメント|댓글|komentar|bình luận|"
                "σχόλια|hozzászólások|comentarii|reply|antworten|répondre|responder|rispondi|svara|odpowiedz|ответить|"
                "leave a comment|post a comment|add a comment|write a comment|to participate in the discussion",
    "advertisement": "advertisement|advertising|ad|ads|sponsored|anzeige|werbung|publicité|publicidad|pubblicità|"
                     "publicidade|advertentie|annons|annonce|annonse|mainos|reklama|реклама|reklam|إعلان|广告|広告|광고|"
                     "iklan|quảng cáo|διαφήμιση|hirdetés|publicitate|scroll to continue",
    "cookies": "accept|accept all|accept cookies|allow all|reject all|cookie settings|manage cookies|alle akzeptieren|"
               "akzeptieren|tout accepter|accepter|aceptar|aceptar todo|accetta|accetta tutto|aceitar|accepteren|"
               "godkänn|acceptér|godta|hyväksy|akceptuję|zaakceptuj|přijmout|принять|прийняти|kabul et|قبول|接受|"
               "同意する|동의|terima|chấp nhận|αποδοχή|elfogadom|accept toate|cookie policy|cookies",
    "newsletter": "newsletter|newsletters|sign up for our newsletter|get the newsletter|рассылка|نشرة|邮件订阅|ニュースレター|뉴스레터",
    "loading": "loading|loading...|loader|laden|chargement|cargando|caricamento|carregando|laddar|indlæser|lataa|"
               "ładowanie|načítání|загрузка|завантаження|yükleniyor|جار التحميل|加载中|読み込み中|로딩|memuat|đang tải|"
               "φόρτωση|betöltés|se încarcă|load more|mehr laden|voir plus|cargar más|carica altro|ещё|показать еще",
    "copyright": "all rights reserved|alle rechte vorbehalten|tous droits réservés|todos los derechos reservados|"
                 "tutti i diritti riservati|todos os direitos reservados|alle rechten voorbehouden|"
                 "alla rättigheter förbehållna|wszelkie prawa zastrzeżone|všechna práva vyhrazena|все права защищены|"
                 "усі права захищені|tüm hakları saklıdır|جميع الحقوق محفوظة|版权所有|無断転載を禁じます|"
                 "hak cipta dilindungi|bảo lưu mọi quyền|με την επιφύλαξη παντός δικαιώματος|minden jog fenntartva|"
                 "toate drepturile rezervate",
    "social": "facebook|twitter|x|instagram|youtube|linkedin|whatsapp|telegram|pinterest|reddit|tiktok|vk|"
              "vkontakte|ok|email|e-mail|copy link|link kopieren|copier le lien|weibo|wechat|line|kakaotalk|chats",
    "account": "my account|mein konto|mon compte|mi cuenta|il mio account|minha conta|mijn account|mitt konto|"
               "min konto|oma tili|moje konto|můj účet|мой аккаунт|личный кабинет|hesabım|حسابي|我的账户|マイページ|내 계정|akun saya|tài khoản",
}

NAVIGATION = {
    "read more": "read more|more|continue reading|weiterlesen|mehr|mehr lesen|lire la suite|en savoir plus|leer más|"
                 "seguir leyendo|leggi tutto|continua a leggere|leia mais|saiba mais|lees meer|läs mer|læs mere|les mer|"
                 "lue lisää|czytaj więcej|więcej|číst dál|více|читать далее|подробнее|читати далі|devamını oku|"
                 "اقرأ المزيد|المزيد|阅读更多|更多|続きを読む|もっと見る|더보기|selengkapnya|xem thêm|διαβάστε περισσότερα|"
                 "tovább|citește mai mult",
    "next": "next|previous|prev|older posts|newer posts|weiter|zurück|suivant|précédent|siguiente|anterior|"
            "successivo|precedente|próximo|volgende|vorige|nästa|föregående|næste|forrige|neste|seuraava|edellinen|"
            "następny|poprzedni|další|předchozí|далее|назад|вперед|наступна|попередня|sonraki|önceki|التالي|السابق|"
            "下一页|上一页|次へ|前へ|다음|이전|berikutnya|sebelumnya|tiếp|trước|επόμενο|προηγούμενο|következő|előző|"
            "următorul|anterior|back to top|nach oben|haut de page|volver arriba|torna su|voltar ao topo",
    "home": "home|startseite|accueil|inicio|portada|início|página inicial|hem|forside|etusivu|strona główna|"
            "úvod|главная|головна|ana sayfa|الرئيسية|首页|ホーム|홈|beranda|trang chủ|αρχική|kezdőlap|acasă",
    "site": "contact|contact us|kontakt|nous contacter|contacto|contatti|contato|contacteer ons|kontakta oss|"
            "yhteystiedot|kontakt z nami|контакты|контакти|iletişim|اتصل بنا|联系我们|お問い合わせ|문의|hubungi kami|"
            "liên hệ|επικοινωνία|kapcsolat|contactați-ne|about|about us|über uns|impressum|à propos|qui sommes-nous|"
            "sobre nosotros|chi siamo|sobre nós|over ons|om oss|om os|tietoa meistä|o nas|o nás|о нас|про нас|"
            "hakkımızda|من نحن|关于我们|会社概要|회사소개|tentang kami|giới thiệu|σχετικά|rólunk|despre noi|"
            "privacy policy|privacy|datenschutz|datenschutzerklärung|confidentialité|política de privacidad|"
            "informativa sulla privacy|política de privacidade|privacybeleid|integritetspolicy|privatlivspolitik|"
            "personvern|tietosuoja|polityka prywatności|ochrana osobních údajů|политика конфиденциальности|"
            "gizlilik politikası|سياسة الخصوصية|隐私政策|プライバシーポリシー|개인정보처리방침|kebijakan privasi|"
            "chính sách bảo mật|πολιτική απορρήτου|adatvédelem|confidențialitate|terms|terms of use|terms of service|"
            "agb|nutzungsbedingungen|mentions légales|conditions générales|aviso legal|términos y condiciones|"
            "note legali|termos de uso|algemene voorwaarden|villkor|vilkår|käyttöehdot|regulamin|podmínky|"
            "пользовательское соглашение|kullanım koşulları|شروط الاستخدام|使用条款|利用規約|이용약관|syarat dan ketentuan|"
            "điều khoản|όροι χρήσης|feltételek|termeni și condiții|sitemap|site map|rss|archive|archiv|archives",
    "sections": "news|nachrichten|actualités|noticias|notizie|notícias|nieuws|nyheter|nyheder|uutiset|wiadomości|"
                "zprávy|новости|новини|haberler|أخبار|新闻|ニュース|뉴스|berita|tin tức|ειδήσεις|hírek|știri|"
                "world|welt|monde|mundo|mondo|wereld|världen|verden|maailma|świat|svět|мир|світ|dünya|العالم|国际|国際|세계|"
                "politics|politik|politique|política|politica|politiek|polityka|politika|политика|політика|siyaset|سياسة|政治|정치|"
                "sport|sports|deportes|sportul|спорт|spor|رياضة|体育|スポーツ|스포츠|olahraga|thể thao|"
                "business|wirtschaft|économie|economía|economia|economie|ekonomi|gospodarka|ekonomika|экономика|економіка|"
                "اقتصاد|经济|経済|경제|kinh tế|culture|kultur|cultura|kultura|культура|kültür|ثقافة|文化|문화|"
                "opinion|meinung|opinión|opinione|opinião|mening|opinia|мнения|görüş|رأي|观点|オピニオン|오피니언",
}


def key(line: str) -> str:
    """Normalise a line for lexicon lookup: NFKC, case-fold, strip punctuation, arrows, counts."""
    s = unicodedata.normalize("NFKC", line).casefold().strip()
    s = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", s)  # leading/trailing symbols and numbers ("» Read more (12)")
    return re.sub(r"\s+", " ", s)


def _table(groups: dict) -> dict:
    out = {}
    for group, words in groups.items():
        for w in words.split("|"):
            k = key(w) or w.strip()
            out.setdefault(k, group)
    return out


UI_KEYS = _table(UI_CHROME)
NAV_KEYS = _table(NAVIGATION)


def lookup(line: str) -> tuple[str, str] | None:
    """(label, lexicon group) when the whole line is a known UI or navigation string."""
    k = key(line)
    if not k:
        return ("ui_chrome", "symbols") if line.strip() else None  # icons, numbers alone
    if len(k) > 60:
        return None
    if k in UI_KEYS:
        return "ui_chrome", UI_KEYS[k]
    if k in NAV_KEYS:
        return "navigation", NAV_KEYS[k]
    return None

