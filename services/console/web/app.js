/* ESS console: the commanders' and analysts' page (issue 10).
 *
 * Plain JavaScript, no framework, no build step, nothing from another origin: the service's
 * Content-Security-Policy is default-src 'self', so nothing here writes inline styles or
 * scripts, and every text from the API goes into the page through textContent.
 *
 * What it talks to (the contract is the console service's README and its API):
 *   GET  /api/me, POST /api/login, POST /api/logout       session; the CSRF token comes back
 *   GET  /api/cases?state=open                            the board's first picture
 *   GET  /api/events (EventSource, "case" events)         every change afterwards, no polling
 *   GET  /api/cases/{case}, POST .../reveal-phone         the case drawer
 *   GET  /api/map/provinces                               the map (lon/lat projected here)
 *   GET  /api/stats                                       the statistics page
 *   GET  /api/export.csv, /api/export.eido                download links */
(function () {
  'use strict';

  var WORDS = window.ESS_I18N;
  var LANG_KEY = 'ess.lang';
  var OPEN_STATUSES = { new: true, routed: true, acknowledged: true, on_scene: true };
  var WAITING_STATUSES = { new: true, routed: true };
  var STATUSES = ['new', 'routed', 'acknowledged', 'on_scene'];
  var CATEGORIES = ['threat', 'confinement', 'sexual', 'frenzy', 'gathering'];
  var STATUS_COLOURS = {
    new: '#d32f2f', routed: '#ef6c00', acknowledged: '#1565c0', on_scene: '#6a1b9a',
    closed: '#607d8b', cancelled: '#9e9e9e'
  };
  var CATEGORY_COLOURS = {
    threat: '#c62828', confinement: '#6a1b9a', sexual: '#ad1457', frenzy: '#ef6c00',
    gathering: '#00796b'
  };
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var DAY_MS = 86400000;

  var state = {
    lang: 'th',
    user: null,
    csrf: '',
    cases: new Map(),        // case_number -> CASE (open cases only)
    fresh: new Set(),        // case numbers changed since the last render
    touchedBySse: null,      // while the list loads: cases an event brought meanwhile
    ackTimeoutS: 180,
    clockOffsetMs: 0,        // server's clock minus ours
    events: null,
    eventsRetry: null,
    view: '',
    provinces: null,         // GeoJSON
    provincesLoading: null,
    liveMap: null,
    areaMap: null,
    drawerCase: '',
    drawerDetail: null,
    drawerRefresh: null,
    stats: null,             // {from, to, province, body}
    ticker: null
  };

  // ---- small helpers ---------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function t(key) {
    var table = WORDS[state.lang] || WORDS.th;
    if (Object.prototype.hasOwnProperty.call(table, key)) return table[key];
    if (Object.prototype.hasOwnProperty.call(WORDS.en, key)) return WORDS.en[key];
    return key;
  }

  /* h('td', {class: 'x', data: {case: 'A'}}, [child, 'text']) */
  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    setAttrs(el, attrs);
    appendChildren(el, children);
    return el;
  }

  function s(tag, attrs, children) {
    var el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    appendChildren(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === 'text') {
        el.textContent = String(value);
      } else if (name === 'data') {
        Object.keys(value).forEach(function (key) { el.dataset[key] = String(value[key]); });
      } else if (name.slice(0, 2) === 'on' && typeof value === 'function') {
        el.addEventListener(name.slice(2), value);
      } else {
        el.setAttribute(name, value === true ? '' : String(value));
      }
    });
  }

  function appendChildren(el, children) {
    if (children === null || children === undefined) return;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      el.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
    });
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function show(el, visible) { el.hidden = !visible; }

  function nowMs() { return Date.now() + state.clockOffsetMs; }

  function isAnalyst() { return state.user && state.user.role === 'analyst'; }

  // ---- dates and durations ---------------------------------------------------------------

  /* YYYY-MM-DD of a moment in Asia/Bangkok (the statistics' days). */
  function bangkokDay(ms) {
    return new Intl.DateTimeFormat('en-CA', {
      timeZone: 'Asia/Bangkok', year: 'numeric', month: '2-digit', day: '2-digit'
    }).format(new Date(ms));
  }

  function dayAdd(day, count) {
    var ms = Date.parse(day + 'T00:00:00Z') + count * DAY_MS;
    return new Date(ms).toISOString().slice(0, 10);
  }

  function daysBetween(from, to) {
    var days = [];
    for (var day = from; day <= to && days.length < 400; day = dayAdd(day, 1)) days.push(day);
    return days;
  }

  function locale() { return state.lang === 'th' ? 'th-TH' : 'en-GB'; }

  function formatTime(iso) {
    if (!iso) return '–';
    var ms = Date.parse(iso);
    if (isNaN(ms)) return '–';
    return new Intl.DateTimeFormat(locale(), {
      timeZone: 'Asia/Bangkok', day: 'numeric', month: 'short', year: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit'
    }).format(new Date(ms));
  }

  function formatDayShort(day) {
    return new Intl.DateTimeFormat(locale(), { timeZone: 'UTC', day: 'numeric', month: 'short' })
      .format(new Date(Date.parse(day + 'T00:00:00Z')));
  }

  function pad2(n) { return (n < 10 ? '0' : '') + n; }

  /* 0:42, 4:05, 1:04:05; past a day "2d 03h". */
  function formatClock(seconds) {
    if (!isFinite(seconds) || seconds < 0) seconds = 0;
    seconds = Math.floor(seconds);
    var days = Math.floor(seconds / 86400);
    var hours = Math.floor((seconds % 86400) / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var secs = seconds % 60;
    if (days > 0) return days + (state.lang === 'th' ? 'ว ' : 'd ') + pad2(hours) + (state.lang === 'th' ? 'ชม.' : 'h');
    if (hours > 0) return hours + ':' + pad2(minutes) + ':' + pad2(secs);
    return minutes + ':' + pad2(secs);
  }

  function formatMinutes(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '–';
    if (seconds < 60) return Math.round(seconds) + ' ' + t('seconds_short');
    var minutes = seconds / 60;
    return (minutes >= 10 ? Math.round(minutes) : Math.round(minutes * 10) / 10) + ' ' + t('minutes_short');
  }

  function formatDistance(metres) {
    if (metres === null || metres === undefined) return '–';
    if (metres < 1000) return Math.round(metres) + ' ' + t('unit_m');
    return (Math.round(metres / 100) / 10) + ' ' + t('unit_km');
  }

  // ---- the API ---------------------------------------------------------------------------

  /* Resolves {status, body}; a 401 outside the login sends the page back to the login form. */
  function api(method, path, body) {
    var headers = { Accept: 'application/json' };
    var init = { method: method, credentials: 'same-origin', headers: headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && path !== '/api/login' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    return fetch(path, init).then(function (response) {
      var type = response.headers.get('Content-Type') || '';
      var parse = type.indexOf('json') >= 0 ? response.json().catch(function () { return null; })
        : Promise.resolve(null);
      return parse.then(function (data) {
        if (response.status === 401 && path !== '/api/login' && path !== '/api/me' && state.user) {
          sessionLost();
        }
        return { status: response.status, body: data };
      });
    });
  }

  // ---- language --------------------------------------------------------------------------

  function applyWords(root) {
    (root || document).querySelectorAll('[data-i18n]').forEach(function (el) {
      var key = el.getAttribute('data-i18n');
      if (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') el.placeholder = t(key);
      else el.textContent = t(key);
    });
  }

  function setLanguage(lang) {
    state.lang = WORDS[lang] ? lang : 'th';
    try { localStorage.setItem(LANG_KEY, state.lang); } catch (e) { /* private mode */ }
    document.documentElement.lang = state.lang;
    document.title = t('app_title');
    applyWords();
    renderWho();
    var live = $('live-state');
    if (!live.hidden) live.textContent = live.classList.contains('down') ? t('live_reconnecting') : t('live_connected');
    renderLegends();
    if (state.user) {
      renderBoard();
      if (state.liveMap) state.liveMap.relabel();
      if (state.areaMap) state.areaMap.relabel();
      fillProvinceSelect();
      if (state.stats && state.stats.body) renderStats();
      if (state.drawerDetail) renderDrawer();
    }
  }

  // ---- login and session -----------------------------------------------------------------

  function showLogin() {
    stopLive();
    state.user = null;
    state.csrf = '';
    state.cases.clear();
    closeDrawer();
    show($('app'), false);
    show($('nav'), false);
    show($('logout'), false);
    show($('who'), false);
    show($('live-state'), false);
    show($('login-view'), true);
    $('login-password').value = '';
    setTimeout(function () { $('login-name').focus(); }, 0);
  }

  function sessionLost() {
    if (!state.user) return;
    showLogin();
  }

  function onLogin(event) {
    event.preventDefault();
    var error = $('login-error');
    var button = $('login-submit');
    show(error, false);
    button.disabled = true;
    button.textContent = t('login_busy');
    api('POST', '/api/login', { name: $('login-name').value.trim(), password: $('login-password').value })
      .then(function (answer) {
        if (answer.status === 200 && answer.body && answer.body.user) {
          startSession(answer.body);
        } else {
          error.textContent = answer.status === 401 ? t('login_failed')
            : answer.status === 429 ? t('login_throttled') : t('error_generic');
          show(error, true);
        }
      })
      .catch(function () {
        error.textContent = t('error_generic');
        show(error, true);
      })
      .then(function () {
        button.disabled = false;
        button.textContent = t('login_submit');
        $('login-password').value = '';
      });
  }

  function onLogout() {
    var done = function () { showLogin(); };
    api('POST', '/api/logout').then(done, done);
  }

  function startSession(session) {
    state.user = session.user;
    state.csrf = session.csrf || '';
    show($('login-view'), false);
    show($('app'), true);
    show($('nav'), true);
    show($('logout'), true);
    renderWho();
    document.querySelectorAll('.nav-item').forEach(function (item) {
      var view = item.getAttribute('data-view');
      show(item, allowedViews().indexOf(view) >= 0);
    });
    show($('export-eido'), !isAnalyst());
    loadProvinces();
    if (!isAnalyst()) startLive();
    showView(viewFromHash());
  }

  function renderWho() {
    var who = $('who');
    if (!state.user) return;
    var area = state.user.area === 'all' ? t('area_all') : provinceName(state.user.area);
    who.textContent = state.user.name + ' · ' + t('role_' + state.user.role) + ' · ' + area;
    show(who, true);
  }

  // ---- views -----------------------------------------------------------------------------

  function allowedViews() {
    return isAnalyst() ? ['stats', 'map', 'exports'] : ['live', 'stats', 'exports'];
  }

  function viewFromHash() {
    var wanted = (location.hash || '').replace('#', '');
    var views = allowedViews();
    return views.indexOf(wanted) >= 0 ? wanted : views[0];
  }

  function showView(view) {
    state.view = view;
    ['live', 'map', 'stats', 'exports'].forEach(function (name) {
      show($('view-' + name), name === view);
    });
    document.querySelectorAll('.nav-item').forEach(function (item) {
      item.classList.toggle('active', item.getAttribute('data-view') === view);
    });
    if (location.hash !== '#' + view) history.replaceState(null, '', '#' + view);
    if (view === 'stats' || view === 'map') ensureStats();
    if (view === 'exports') initExports();
    if (view === 'live' && state.liveMap) state.liveMap.resize();
    if (view === 'map' && state.areaMap) state.areaMap.resize();
  }

  // ---- live board ------------------------------------------------------------------------

  function startLive() {
    state.cases.clear();
    renderBoard();
    connectEvents();
    if (!state.ticker) state.ticker = setInterval(tick, 1000);
  }

  function stopLive() {
    if (state.events) state.events.close();
    state.events = null;
    if (state.eventsRetry) clearTimeout(state.eventsRetry);
    state.eventsRetry = null;
    document.body.removeAttribute('data-live');
    document.body.removeAttribute('data-loaded');
  }

  function setLiveState(up) {
    var el = $('live-state');
    el.textContent = up ? t('live_connected') : t('live_reconnecting');
    el.classList.toggle('down', !up);
    show(el, true);
    document.body.setAttribute('data-live', up ? 'open' : 'down');
  }

  /* The stream first, then the list: an event that comes while the list loads wins over
   * the list's older picture of that case. After a broken stream the list is read again:
   * what changed meanwhile was not sent. */
  function connectEvents() {
    if (state.events) state.events.close();
    var source = new EventSource('/api/events');
    state.events = source;
    var needList = true;
    source.addEventListener('open', function () {
      setLiveState(true);
      if (needList) {
        needList = false;
        loadCases();
      }
    });
    source.addEventListener('case', function (event) {
      var item;
      try { item = JSON.parse(event.data); } catch (e) { return; }
      if (!item || typeof item.case_number !== 'string') return;
      if (state.touchedBySse) state.touchedBySse.add(item.case_number);
      upsertCase(item);
    });
    source.addEventListener('error', function () {
      if (state.events !== source) return;
      setLiveState(false);
      needList = true;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not a stream): a lost session, or the server going away.
        source.close();
        api('GET', '/api/me').then(function (answer) {
          if (answer.status === 401) sessionLost();
          else scheduleReconnect();
        }, scheduleReconnect);
      }
    });
  }

  function scheduleReconnect() {
    if (!state.user || isAnalyst()) return;
    if (state.eventsRetry) clearTimeout(state.eventsRetry);
    state.eventsRetry = setTimeout(function () {
      state.eventsRetry = null;
      if (state.user) connectEvents();
    }, 3000);
  }

  function loadCases() {
    state.touchedBySse = new Set();
    return api('GET', '/api/cases?state=open&limit=5000').then(function (answer) {
      var touched = state.touchedBySse;
      state.touchedBySse = null;
      if (answer.status !== 200 || !answer.body) return;
      if (typeof answer.body.ack_timeout_s === 'number') state.ackTimeoutS = answer.body.ack_timeout_s;
      if (answer.body.now) {
        var serverNow = Date.parse(answer.body.now);
        if (!isNaN(serverNow)) state.clockOffsetMs = serverNow - Date.now();
      }
      var listed = new Map();
      (answer.body.cases || []).forEach(function (item) { listed.set(item.case_number, item); });
      // Keep what the stream told us meanwhile; drop what the list no longer has open.
      state.cases.forEach(function (item, number) {
        if (!listed.has(number) && !touched.has(number)) state.cases.delete(number);
      });
      listed.forEach(function (item, number) {
        if (!touched.has(number) && OPEN_STATUSES[item.status]) state.cases.set(number, item);
      });
      renderBoard();
      document.body.setAttribute('data-loaded', '1');
    }).catch(function () { state.touchedBySse = null; });
  }

  function upsertCase(item) {
    if (OPEN_STATUSES[item.status]) state.cases.set(item.case_number, item);
    else state.cases.delete(item.case_number);
    state.fresh.add(item.case_number);
    renderBoard();
    if (state.drawerCase === item.case_number) refreshDrawerSoon();
  }

  function sortedCases() {
    var list = Array.from(state.cases.values());
    list.sort(function (a, b) {
      var wa = WAITING_STATUSES[a.status] ? 0 : 1;
      var wb = WAITING_STATUSES[b.status] ? 0 : 1;
      if (wa !== wb) return wa - wb;
      var ta = Date.parse(a.reported_at) || 0;
      var tb = Date.parse(b.reported_at) || 0;
      return wa === 0 ? ta - tb : tb - ta; // the longest waiting first, then the newest taken
    });
    return list;
  }

  function provinceName(code) {
    if (!state.provinces || !code) return code || '';
    var feature = state.provinces.features.find(function (f) { return f.properties.code === code; });
    if (!feature) return code;
    return state.lang === 'th' ? feature.properties.name_th : feature.properties.name_en;
  }

  function localName(item, base) {
    var th = item[base + '_th'];
    var en = item[base + '_en'];
    return state.lang === 'th' ? (th || en) : (en || th);
  }

  /* The time-to-take clock: from the report to the take (or now, while nobody took it). */
  function takeClock(item, now) {
    var start = Date.parse(item.reported_at);
    var end = item.acknowledged_at ? Date.parse(item.acknowledged_at) : NaN;
    var running = isNaN(end) && WAITING_STATUSES[item.status] === true;
    if (isNaN(end)) end = now;
    var seconds = isNaN(start) ? 0 : (end - start) / 1000;
    return { seconds: seconds, running: running, late: seconds > state.ackTimeoutS };
  }

  function paintClock(el, item, now) {
    var clock = takeClock(item, now);
    el.textContent = formatClock(clock.seconds);
    el.className = 'clock ' + (clock.running ? 'running' : 'stopped') + (clock.late ? ' late' : '');
    el.setAttribute('data-late', clock.late ? '1' : '0');
  }

  function paintAge(el, item, now) {
    var start = Date.parse(item.reported_at);
    el.textContent = isNaN(start) ? '–' : formatClock((now - start) / 1000);
  }

  function renderBoard() {
    var body = $('board-body');
    if (!body) return;
    var now = nowMs();
    var list = sortedCases();
    clear(body);
    list.forEach(function (item) {
      var area = localName(item, 'province') || t('at_sea');
      var district = localName(item, 'district');
      var clock = h('span', { class: 'clock' });
      var age = h('span', { class: 'num age' });
      paintClock(clock, item, now);
      paintAge(age, item, now);
      var level = item.escalation_level || 0;
      var row = h('tr', {
        data: { case: item.case_number, status: item.status },
        class: state.fresh.has(item.case_number) ? 'fresh' : null,
        tabindex: '0',
        onclick: function () { openCase(item.case_number); },
        onkeydown: function (event) { if (event.key === 'Enter') openCase(item.case_number); }
      }, [
        h('td', { class: 'case-no', 'data-label': t('col_case'), text: item.case_number }),
        h('td', { class: 'category', 'data-label': t('col_category') },
          h('span', { class: 'chip cat-' + item.category, data: { category: item.category } },
            h('span', { text: t('cat_' + item.category) }))),
        h('td', { class: 'area', 'data-label': t('col_area') }, [area, district ? h('small', { text: district }) : null]),
        h('td', { class: 'status', 'data-label': t('col_status') },
          h('span', { class: 'badge st-' + item.status, data: { status: item.status }, text: t('st_' + item.status) })),
        h('td', { class: 'age-cell', 'data-label': t('col_age') }, age),
        h('td', { class: 'take', 'data-label': t('col_take') }, clock),
        h('td', { class: 'taken-by', 'data-label': t('col_taken_by'), text: item.acknowledged_by || '–' }),
        h('td', { 'data-label': t('col_level') },
          h('span', { class: 'level' + (level > 0 ? ' up' : ''), data: { level: level }, text: String(level) }))
      ]);
      body.appendChild(row);
    });
    state.fresh.clear();
    $('board-count').textContent = String(list.length);
    show($('board-empty'), list.length === 0);
    if (state.liveMap) state.liveMap.setPins(list);
  }

  function tick() {
    if (!state.user || isAnalyst()) return;
    var now = nowMs();
    document.querySelectorAll('#board-body tr[data-case]').forEach(function (row) {
      var item = state.cases.get(row.getAttribute('data-case'));
      if (!item) return;
      var clock = row.querySelector('.clock');
      var age = row.querySelector('.age');
      if (clock) paintClock(clock, item, now);
      if (age) paintAge(age, item, now);
    });
    if (state.liveMap) state.liveMap.repaintLate(now);
  }

  function renderLegends() {
    var statusLegend = $('status-legend');
    clear(statusLegend);
    STATUSES.forEach(function (status) {
      statusLegend.appendChild(h('li', null, [h('span', { class: 'dot st-' + status }), t('st_' + status)]));
    });
    var categoryLegend = $('category-legend');
    clear(categoryLegend);
    CATEGORIES.forEach(function (category) {
      categoryLegend.appendChild(h('li', null, [h('span', { class: 'dot cat-' + category }), t('cat_' + category)]));
    });
  }

  // ---- the map ---------------------------------------------------------------------------

  function loadProvinces() {
    if (state.provinces) {
      buildMaps();
      return Promise.resolve(state.provinces);
    }
    if (state.provincesLoading) return state.provincesLoading;
    state.provincesLoading = api('GET', '/api/map/provinces').then(function (answer) {
      state.provincesLoading = null;
      if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.features)) return null;
      state.provinces = answer.body;
      buildMaps();
      renderWho();
      fillProvinceSelect();
      renderBoard();
      return state.provinces;
    }, function () { state.provincesLoading = null; return null; });
    return state.provincesLoading;
  }

  function buildMaps() {
    if (!state.provinces) return;
    if (!isAnalyst() && !state.liveMap) {
      state.liveMap = new ThailandMap($('live-map'), $('live-map-title'), true);
      state.liveMap.setPins(sortedCases());
    }
    if (isAnalyst() && !state.areaMap) {
      state.areaMap = new ThailandMap($('area-map'), $('area-map-title'), false);
      if (state.stats && state.stats.body) state.areaMap.shade(reportsByProvince(state.stats.body.rows || []));
    }
  }

  /* Equirectangular projection around Thailand's middle latitude: x grows east, y south;
   * 100 units per degree of latitude. Good enough for a country this size. */
  var MID_LAT = 13;
  var LON_SCALE = Math.cos(MID_LAT * Math.PI / 180);
  function project(lon, lat) { return [lon * LON_SCALE * 100, -lat * 100]; }

  function ThailandMap(container, titleEl, withPins) {
    this.container = container;
    this.titleEl = titleEl;
    this.withPins = withPins;
    this.features = [];
    this.focus = '';
    this.pins = [];
    this.animation = 0;
    this.build();
  }

  ThailandMap.prototype.build = function () {
    var self = this;
    clear(this.container);
    var svg = s('svg', { role: 'img', preserveAspectRatio: 'xMidYMid meet' });
    var land = s('g', { class: 'land' });
    var pins = s('g', { class: 'pins' });
    var bounds = [Infinity, Infinity, -Infinity, -Infinity];
    state.provinces.features.forEach(function (feature) {
      var geometry = feature.geometry;
      if (!geometry) return;
      var polygons = geometry.type === 'Polygon' ? [geometry.coordinates]
        : geometry.type === 'MultiPolygon' ? geometry.coordinates : [];
      var box = [Infinity, Infinity, -Infinity, -Infinity];
      var d = [];
      polygons.forEach(function (polygon) {
        polygon.forEach(function (ring) {
          ring.forEach(function (point, i) {
            var xy = project(point[0], point[1]);
            d.push((i === 0 ? 'M' : 'L') + xy[0].toFixed(1) + ' ' + xy[1].toFixed(1));
            if (xy[0] < box[0]) box[0] = xy[0];
            if (xy[1] < box[1]) box[1] = xy[1];
            if (xy[0] > box[2]) box[2] = xy[0];
            if (xy[1] > box[3]) box[3] = xy[1];
          });
          d.push('Z');
        });
      });
      if (!isFinite(box[0])) return;
      bounds = [Math.min(bounds[0], box[0]), Math.min(bounds[1], box[1]),
        Math.max(bounds[2], box[2]), Math.max(bounds[3], box[3])];
      var code = feature.properties.code;
      var path = s('path', {
        class: 'province', d: d.join(''), data: { code: code }, 'vector-effect': 'non-scaling-stroke'
      });
      var title = s('title');
      path.appendChild(title);
      path.addEventListener('click', function () { self.toggleFocus(code); });
      land.appendChild(path);
      self.features.push({ code: code, feature: feature, box: box, path: path, title: title });
    });
    var pad = 15;
    this.full = [bounds[0] - pad, bounds[1] - pad, bounds[2] - bounds[0] + 2 * pad, bounds[3] - bounds[1] + 2 * pad];
    this.viewBox = this.full.slice();
    svg.setAttribute('viewBox', this.viewBox.join(' '));
    svg.appendChild(land);
    svg.appendChild(pins);
    this.svg = svg;
    this.pinLayer = pins;
    this.container.appendChild(svg);
    this.tip = h('div', { class: 'map-tip', hidden: true });
    this.container.appendChild(this.tip);
    this.container.addEventListener('mouseover', function (event) {
      var code = event.target && event.target.getAttribute && event.target.getAttribute('data-code');
      if (code) { self.tip.textContent = provinceName(code); show(self.tip, true); }
    });
    this.container.addEventListener('mouseleave', function () { show(self.tip, false); });
    var reset = this.container.parentNode.querySelector('.map-reset');
    if (reset) reset.addEventListener('click', function () { self.setFocus(''); });
    this.relabel();
    window.addEventListener('resize', function () { self.resize(); });
  };

  ThailandMap.prototype.relabel = function () {
    this.features.forEach(function (entry) {
      var p = entry.feature.properties;
      entry.title.textContent = state.lang === 'th' ? p.name_th : p.name_en;
    });
    this.titleEl.textContent = this.focus ? provinceName(this.focus) : t('map_title');
  };

  ThailandMap.prototype.toggleFocus = function (code) {
    this.setFocus(this.focus === code ? '' : code);
  };

  ThailandMap.prototype.setFocus = function (code) {
    this.focus = code;
    var target = this.full;
    this.features.forEach(function (entry) {
      entry.path.classList.toggle('focus', entry.code === code);
      if (entry.code === code) {
        var box = entry.box;
        var w = box[2] - box[0];
        var hgt = box[3] - box[1];
        var pad = Math.max(w, hgt) * 0.15 + 5;
        target = [box[0] - pad, box[1] - pad, w + 2 * pad, hgt + 2 * pad];
      }
    });
    this.titleEl.textContent = code ? provinceName(code) : t('map_title');
    this.container.setAttribute('data-focus', code);
    this.animateTo(target);
  };

  ThailandMap.prototype.animateTo = function (target) {
    var self = this;
    var from = this.viewBox.slice();
    var started = performance.now();
    var duration = 350;
    var id = ++this.animation;
    function step(now) {
      if (id !== self.animation) return;
      var k = Math.min(1, (now - started) / duration);
      var e = k < 0.5 ? 2 * k * k : 1 - Math.pow(-2 * k + 2, 2) / 2;
      self.viewBox = from.map(function (v, i) { return v + (target[i] - v) * e; });
      self.svg.setAttribute('viewBox', self.viewBox.map(function (v) { return v.toFixed(2); }).join(' '));
      self.sizePins();
      if (k < 1) requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  };

  /* SVG units per screen pixel, so pins keep their size on screen whatever the zoom. */
  ThailandMap.prototype.unitsPerPixel = function () {
    var rect = this.svg.getBoundingClientRect();
    if (!rect.width || !rect.height) return this.viewBox[2] / 400;
    return Math.max(this.viewBox[2] / rect.width, this.viewBox[3] / rect.height);
  };

  ThailandMap.prototype.sizePins = function () {
    var unit = this.unitsPerPixel();
    this.pins.forEach(function (pin) {
      pin.dot.setAttribute('r', (7 * unit).toFixed(2));
      pin.dot.setAttribute('stroke-width', (1.5 * unit).toFixed(2));
      pin.halo.setAttribute('r', (12 * unit).toFixed(2));
      pin.halo.setAttribute('stroke-width', (2 * unit).toFixed(2));
    });
  };

  ThailandMap.prototype.resize = function () { this.sizePins(); };

  ThailandMap.prototype.setPins = function (cases) {
    if (!this.withPins) return;
    var self = this;
    clear(this.pinLayer);
    this.pins = [];
    var withCases = new Set();
    // The board lists the waiting cases first; on the map they are drawn last, on top.
    cases.slice().reverse().forEach(function (item) {
      if (item.province_code) withCases.add(item.province_code);
      if (typeof item.lat !== 'number' || typeof item.lon !== 'number') return;
      var xy = project(item.lon, item.lat);
      var colour = STATUS_COLOURS[item.status] || '#555';
      var halo = s('circle', { class: 'pin-halo', cx: xy[0].toFixed(2), cy: xy[1].toFixed(2), stroke: colour });
      var dot = s('circle', {
        class: 'pin', cx: xy[0].toFixed(2), cy: xy[1].toFixed(2), fill: colour,
        data: { case: item.case_number, status: item.status }
      });
      var title = s('title', { text: item.case_number + ' · ' + t('cat_' + item.category) + ' · ' + t('st_' + item.status) });
      dot.appendChild(title);
      dot.addEventListener('click', function (event) {
        event.stopPropagation();
        openCase(item.case_number);
      });
      self.pinLayer.appendChild(halo);
      self.pinLayer.appendChild(dot);
      self.pins.push({ item: item, dot: dot, halo: halo });
    });
    this.features.forEach(function (entry) { entry.path.classList.toggle('has-cases', withCases.has(entry.code)); });
    this.sizePins();
    this.repaintLate(nowMs());
  };

  ThailandMap.prototype.repaintLate = function (now) {
    this.pins.forEach(function (pin) {
      var clock = takeClock(pin.item, now);
      var late = clock.running && clock.late;
      pin.dot.classList.toggle('late', late);
      pin.dot.setAttribute('data-late', late ? '1' : '0');
      if (late) pin.halo.removeAttribute('display');
      else pin.halo.setAttribute('display', 'none');
    });
  };

  /* Analysts' map: provinces shaded by their number of reports. */
  ThailandMap.prototype.shade = function (counts) {
    var max = 0;
    counts.forEach(function (count) { if (count > max) max = count; });
    this.features.forEach(function (entry) {
      var count = counts.get(entry.code) || 0;
      var k = max > 0 ? count / max : 0;
      var colour = count === 0 ? '' : mix([255, 243, 224], [183, 28, 28], 0.15 + 0.85 * k);
      if (colour) entry.path.style.setProperty('fill', colour);
      else entry.path.style.removeProperty('fill');
      entry.path.setAttribute('data-reports', String(count));
      var p = entry.feature.properties;
      entry.title.textContent = (state.lang === 'th' ? p.name_th : p.name_en) + ' · ' + t('map_reports') + ' ' + count;
    });
  };

  function mix(a, b, k) {
    var c = a.map(function (v, i) { return Math.round(v + (b[i] - v) * k); });
    return 'rgb(' + c.join(',') + ')';
  }

  // ---- the case drawer -------------------------------------------------------------------

  function openCase(number) {
    if (isAnalyst()) return;
    state.drawerCase = number;
    state.drawerDetail = null;
    $('case-title').textContent = number;
    clear($('case-body'));
    $('case-body').appendChild(h('p', { class: 'hint', text: '…' }));
    show($('case-drawer'), true);
    show($('drawer-backdrop'), true);
    loadCase(number);
  }

  function loadCase(number) {
    return api('GET', '/api/cases/' + encodeURIComponent(number)).then(function (answer) {
      if (state.drawerCase !== number) return;
      if (answer.status === 200 && answer.body && answer.body.case) {
        state.drawerDetail = answer.body;
        renderDrawer();
      } else {
        clear($('case-body'));
        $('case-body').appendChild(h('p', { class: 'error', text: answer.status === 404 ? t('error_not_found') : t('error_generic') }));
      }
    });
  }

  function refreshDrawerSoon() {
    if (state.drawerRefresh) return;
    state.drawerRefresh = setTimeout(function () {
      state.drawerRefresh = null;
      if (state.drawerCase && !document.querySelector('.reveal-form')) loadCase(state.drawerCase);
    }, 300);
  }

  function closeDrawer() {
    state.drawerCase = '';
    state.drawerDetail = null;
    show($('case-drawer'), false);
    show($('drawer-backdrop'), false);
  }

  function fact(list, label, value) {
    list.appendChild(h('dt', { text: label }));
    list.appendChild(h('dd', null, value));
  }

  function renderDrawer() {
    var detail = state.drawerDetail;
    var item = detail.case;
    var body = $('case-body');
    clear(body);
    var facts = h('dl', { class: 'facts' });
    fact(facts, t('col_category'), h('span', { class: 'chip cat-' + item.category }, h('span', { text: t('cat_' + item.category) })));
    fact(facts, t('col_status'), h('span', { class: 'badge st-' + item.status, data: { status: item.status }, text: t('st_' + item.status) }));
    var area = [localName(item, 'province'), localName(item, 'district'), localName(item, 'tambon')]
      .filter(function (x) { return x; }).join(' › ');
    fact(facts, t('col_area'), area || t('at_sea'));
    if (localName(item, 'station')) {
      fact(facts, t('case_station'), localName(item, 'station') +
        (item.station_distance_m !== null && item.station_distance_m !== undefined ? ' (' + formatDistance(item.station_distance_m) + ')' : ''));
    }
    if (typeof item.lat === 'number' && typeof item.lon === 'number') {
      fact(facts, t('case_location'), item.lat.toFixed(5) + ', ' + item.lon.toFixed(5));
    }
    [['reported_at', 'case_reported'], ['routed_at', 'case_routed'], ['acknowledged_at', 'case_acknowledged'],
      ['on_scene_at', 'case_on_scene'], ['closed_at', 'case_closed'], ['cancelled_at', 'case_cancelled']]
      .forEach(function (pair) { if (item[pair[0]]) fact(facts, t(pair[1]), formatTime(item[pair[0]])); });
    var clock = h('span', { class: 'clock' });
    paintClock(clock, item, nowMs());
    fact(facts, t('col_take'), clock);
    fact(facts, t('col_taken_by'), item.acknowledged_by || '–');
    fact(facts, t('col_level'), String(item.escalation_level || 0));
    if (item.outcome) fact(facts, t('case_outcome'), String(item.outcome));
    fact(facts, t('case_phone'), phoneRow(item));
    body.appendChild(facts);

    body.appendChild(h('h3', { text: t('case_timeline') }));
    var timeline = detail.timeline || [];
    if (timeline.length === 0) {
      body.appendChild(h('p', { class: 'hint', text: t('case_timeline_empty') }));
    } else {
      var list = h('ol', { class: 'timeline' });
      timeline.forEach(function (entry) {
        var label = t('tl_' + entry.kind);
        var extra = describeDetail(entry.detail);
        list.appendChild(h('li', { data: { kind: entry.kind } }, [
          h('time', { datetime: entry.at || '', text: formatTime(entry.at) }),
          h('strong', { text: label.indexOf('tl_') === 0 ? entry.kind : label }),
          entry.actor ? h('span', { class: 'actor', text: ' · ' + entry.actor }) : null,
          extra ? h('div', { class: 'hint', text: extra }) : null
        ]));
      });
      body.appendChild(list);
    }

    var day = item.reported_at ? bangkokDay(Date.parse(item.reported_at)) : bangkokDay(nowMs());
    var range = '?from=' + day + '&to=' + bangkokDay(nowMs()) + '&case=' + encodeURIComponent(item.case_number);
    body.appendChild(h('h3', { text: t('case_export') }));
    body.appendChild(h('div', { class: 'export-links' }, [
      h('a', { class: 'button', href: '/api/export.csv' + range, download: '', text: 'CSV' }),
      h('a', { class: 'button', href: '/api/export.eido' + range, download: '', text: 'EIDO' })
    ]));
  }

  function describeDetail(detail) {
    if (!detail || typeof detail !== 'object') return '';
    return Object.keys(detail).slice(0, 8).map(function (key) {
      var value = detail[key];
      if (value !== null && typeof value === 'object') value = JSON.stringify(value);
      return key + ': ' + String(value).slice(0, 120);
    }).join(' · ');
  }

  function phoneRow(item) {
    var row = h('div', { class: 'phone-row' });
    var number = h('span', { class: 'phone', text: item.phone_masked || t('case_no_phone') });
    row.appendChild(number);
    if (!item.phone_masked) return row;
    var button = h('button', { type: 'button', class: 'small', id: 'reveal-phone', text: t('reveal') });
    button.addEventListener('click', function () {
      show(button, false);
      var reason = h('textarea', { maxlength: '200', required: true, id: 'reveal-reason' });
      var note = h('p', { class: 'error', hidden: true });
      var form = h('form', { class: 'reveal-form' }, [
        h('label', { for: 'reveal-reason', text: t('reveal_reason') }), reason, note,
        h('div', { class: 'row' }, [
          h('button', { type: 'submit', class: 'primary small', text: t('reveal_confirm') }),
          h('button', { type: 'button', class: 'small', text: t('reveal_cancel'), onclick: function () {
            row.removeChild(form);
            show(button, true);
          } })
        ])
      ]);
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        var text = reason.value.trim();
        if (text.length < 1 || text.length > 200) {
          note.textContent = t('reveal_need_reason');
          show(note, true);
          return;
        }
        api('POST', '/api/cases/' + encodeURIComponent(item.case_number) + '/reveal-phone', { reason: text })
          .then(function (answer) {
            if (answer.status === 200 && answer.body && answer.body.phone) {
              row.removeChild(form);
              clear(number);
              number.appendChild(h('a', { href: 'tel:' + answer.body.phone, text: answer.body.phone }));
              number.setAttribute('data-revealed', '1');
            } else {
              note.textContent = answer.status === 409 ? t('reveal_erased') : t('reveal_failed');
              show(note, true);
            }
          }, function () {
            note.textContent = t('reveal_failed');
            show(note, true);
          });
      });
      row.appendChild(form);
      reason.focus();
    });
    row.appendChild(button);
    return row;
  }

  // ---- statistics ------------------------------------------------------------------------

  function fillProvinceSelect() {
    var select = $('stats-province');
    if (!select || !state.provinces) return;
    var chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    select.options[0].textContent = t('stats_all_provinces');
    var names = state.provinces.features.map(function (f) {
      return { code: f.properties.code, name: state.lang === 'th' ? f.properties.name_th : f.properties.name_en };
    });
    names.sort(function (a, b) { return a.name.localeCompare(b.name, locale()); });
    names.forEach(function (entry) { select.appendChild(h('option', { value: entry.code, text: entry.name })); });
    if (state.user && state.user.area && state.user.area !== 'all') {
      select.value = state.user.area;
      select.disabled = true;
    } else {
      select.value = chosen;
    }
  }

  function defaultRange() {
    var to = bangkokDay(nowMs());
    return { from: dayAdd(to, -29), to: to };
  }

  function ensureStats() {
    if (!$('stats-from').value) {
      var range = defaultRange();
      $('stats-from').value = range.from;
      $('stats-to').value = range.to;
    }
    if (!state.stats) loadStats();
  }

  function loadStats() {
    var from = $('stats-from').value;
    var to = $('stats-to').value;
    var province = $('stats-province').value;
    var error = $('stats-error');
    show(error, false);
    if (!from || !to || from > to) {
      error.textContent = t('error_generic');
      show(error, true);
      return Promise.resolve();
    }
    var query = '?from=' + from + '&to=' + to + (province ? '&province=' + encodeURIComponent(province) : '');
    return api('GET', '/api/stats' + query).then(function (answer) {
      if (answer.status !== 200 || !answer.body) {
        error.textContent = answer.status === 403 ? t('error_forbidden') : t('error_generic');
        show(error, true);
        return;
      }
      state.stats = { from: from, to: to, province: province, body: answer.body };
      renderStats();
    });
  }

  function sum(rows, key) {
    return rows.reduce(function (total, row) { return total + (Number(row[key]) || 0); }, 0);
  }

  /* Percentiles do not add up; a day's value over several provinces and categories is the
   * mean of theirs weighted by their reports (the totals above the charts are exact). */
  function weighted(rows, key) {
    var total = 0;
    var weight = 0;
    rows.forEach(function (row) {
      var value = row[key];
      if (value === null || value === undefined || !isFinite(value)) return;
      var w = Math.max(1, Number(row.reports) || 0);
      total += value * w;
      weight += w;
    });
    return weight > 0 ? total / weight : null;
  }

  function reportsByProvince(rows) {
    var counts = new Map();
    rows.forEach(function (row) {
      if (!row.province_code) return;
      counts.set(row.province_code, (counts.get(row.province_code) || 0) + (Number(row.reports) || 0));
    });
    return counts;
  }

  function renderStats() {
    var body = state.stats.body;
    var rows = Array.isArray(body.rows) ? body.rows : [];
    var totals = body.totals || {};
    var kpis = $('kpis');
    clear(kpis);
    [['reports', 'stats_reports', 'count'], ['take_p50_s', 'stats_take_p50', 'time'],
      ['take_p90_s', 'stats_take_p90', 'time'], ['scene_p50_s', 'stats_scene_p50', 'time'],
      ['scene_p90_s', 'stats_scene_p90', 'time'], ['escalations', 'stats_escalations', 'count'],
      ['cancellations', 'stats_cancellations', 'count'], ['false_alarms', 'stats_false_alarms', 'count']]
      .forEach(function (spec) {
        var value = totals[spec[0]];
        var text = spec[2] === 'time' ? formatMinutes(value) : String(value === null || value === undefined ? 0 : value);
        kpis.appendChild(h('div', { class: 'kpi', data: { key: spec[0] } }, [
          h('div', { class: 'label', text: t(spec[1]) }), h('div', { class: 'value', text: text })
        ]));
      });

    var days = daysBetween(state.stats.from, state.stats.to);
    var byDay = new Map();
    days.forEach(function (day) { byDay.set(day, []); });
    rows.forEach(function (row) { if (byDay.has(row.day)) byDay.get(row.day).push(row); });
    var perDay = days.map(function (day) { return byDay.get(day); });

    barChart($('chart-reports'), days, CATEGORIES.map(function (category) {
      return {
        label: t('cat_' + category), colour: CATEGORY_COLOURS[category],
        values: perDay.map(function (list) {
          return sum(list.filter(function (row) { return row.category === category; }), 'reports');
        })
      };
    }), true);
    var toMinutes = function (v) { return v === null ? null : v / 60; };
    lineChart($('chart-take'), days, [
      { label: 'P50', colour: '#1565c0', values: perDay.map(function (list) { return toMinutes(weighted(list, 'take_p50_s')); }) },
      { label: 'P90', colour: '#c62828', values: perDay.map(function (list) { return toMinutes(weighted(list, 'take_p90_s')); }) }
    ]);
    lineChart($('chart-scene'), days, [
      { label: 'P50', colour: '#6a1b9a', values: perDay.map(function (list) { return toMinutes(weighted(list, 'scene_p50_s')); }) },
      { label: 'P90', colour: '#ef6c00', values: perDay.map(function (list) { return toMinutes(weighted(list, 'scene_p90_s')); }) }
    ]);
    barChart($('chart-problems'), days, [
      { label: t('stats_escalations'), colour: '#ef6c00', values: perDay.map(function (list) { return sum(list, 'escalations'); }) },
      { label: t('stats_cancellations'), colour: '#607d8b', values: perDay.map(function (list) { return sum(list, 'cancellations'); }) },
      { label: t('stats_false_alarms'), colour: '#ad1457', values: perDay.map(function (list) { return sum(list, 'false_alarms'); }) }
    ], false);
    renderStatsTable(rows);
    if (state.areaMap) state.areaMap.shade(reportsByProvince(rows));
  }

  function renderStatsTable(rows) {
    var groups = new Map();
    rows.forEach(function (row) {
      var key = (row.province_code || '') + '|' + row.category;
      if (!groups.has(key)) groups.set(key, { first: row, rows: [] });
      groups.get(key).rows.push(row);
    });
    var list = Array.from(groups.values()).map(function (group) {
      return { row: group.first, reports: sum(group.rows, 'reports'), rows: group.rows };
    });
    list.sort(function (a, b) { return b.reports - a.reports; });
    var table = $('stats-table');
    clear(table);
    var headings = [t('stats_province'), t('col_category'), t('stats_reports'), t('stats_take_p50'),
      t('stats_take_p90'), t('stats_scene_p50'), t('stats_scene_p90'), t('stats_escalations'),
      t('stats_cancellations'), t('stats_false_alarms')];
    table.appendChild(h('thead', null, h('tr', null, headings.map(function (text, i) {
      return h('th', { class: i >= 2 ? 'num' : null, text: text });
    }))));
    var tbody = h('tbody');
    list.forEach(function (entry) {
      var name = localName(entry.row, 'province') || t('at_sea');
      tbody.appendChild(h('tr', null, [
        h('td', { text: name }),
        h('td', null, h('span', { class: 'chip cat-' + entry.row.category }, h('span', { text: t('cat_' + entry.row.category) }))),
        h('td', { class: 'num', text: String(entry.reports) }),
        h('td', { class: 'num', text: formatMinutes(weighted(entry.rows, 'take_p50_s')) }),
        h('td', { class: 'num', text: formatMinutes(weighted(entry.rows, 'take_p90_s')) }),
        h('td', { class: 'num', text: formatMinutes(weighted(entry.rows, 'scene_p50_s')) }),
        h('td', { class: 'num', text: formatMinutes(weighted(entry.rows, 'scene_p90_s')) }),
        h('td', { class: 'num', text: String(sum(entry.rows, 'escalations')) }),
        h('td', { class: 'num', text: String(sum(entry.rows, 'cancellations')) }),
        h('td', { class: 'num', text: String(sum(entry.rows, 'false_alarms')) })
      ]));
    });
    if (list.length === 0) {
      tbody.appendChild(h('tr', null, h('td', { colspan: '10', class: 'empty', text: t('chart_empty') })));
    }
    table.appendChild(tbody);
  }

  // ---- charts (SVG) ----------------------------------------------------------------------

  var CHART = { w: 600, h: 230, left: 44, right: 10, top: 12, bottom: 30 };

  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }

  function chartFrame(container, days, max, seriesList) {
    clear(container);
    var svg = s('svg', { viewBox: '0 0 ' + CHART.w + ' ' + CHART.h, role: 'img' });
    var plotW = CHART.w - CHART.left - CHART.right;
    var plotH = CHART.h - CHART.top - CHART.bottom;
    var y = function (v) { return CHART.top + plotH - (v / max) * plotH; };
    for (var i = 0; i <= 4; i++) {
      var v = max * i / 4;
      svg.appendChild(s('line', { class: 'grid', x1: CHART.left, x2: CHART.w - CHART.right, y1: y(v), y2: y(v) }));
      svg.appendChild(s('text', { x: CHART.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: Math.round(v * 100) / 100 }));
    }
    svg.appendChild(s('line', { class: 'axis', x1: CHART.left, x2: CHART.w - CHART.right, y1: y(0), y2: y(0) }));
    var every = Math.max(1, Math.ceil(days.length / 8));
    var slot = plotW / Math.max(1, days.length);
    days.forEach(function (day, index) {
      if (index % every !== 0) return;
      svg.appendChild(s('text', {
        x: CHART.left + slot * (index + 0.5), y: CHART.h - 10, 'text-anchor': 'middle', text: formatDayShort(day)
      }));
    });
    var legend = s('g');
    var lx = CHART.left + 4;
    seriesList.forEach(function (series) {
      if (seriesList.length < 2) return;
      legend.appendChild(s('rect', { x: lx, y: 2, width: 10, height: 10, fill: series.colour }));
      var label = s('text', { x: lx + 14, y: 11, text: series.label });
      legend.appendChild(label);
      lx += 22 + series.label.length * 6.5;
    });
    svg.appendChild(legend);
    container.appendChild(svg);
    return { svg: svg, y: y, slot: slot, plotH: plotH };
  }

  function emptyNote(frame) {
    frame.svg.appendChild(s('text', {
      class: 'empty-note', x: CHART.w / 2, y: CHART.h / 2, 'text-anchor': 'middle', text: t('chart_empty')
    }));
  }

  function barChart(container, days, seriesList, stacked) {
    var max = 0;
    days.forEach(function (day, i) {
      var total = 0;
      seriesList.forEach(function (series) {
        total = stacked ? total + series.values[i] : Math.max(total, series.values[i]);
      });
      if (total > max) max = total;
    });
    // Counts: a top that four grid steps divide into whole numbers.
    var top = Math.max(4, Math.ceil(niceMax(max) / 4) * 4);
    var frame = chartFrame(container, days, top, seriesList.length > 1 && !stacked ? seriesList : []);
    var width = frame.slot * 0.75;
    days.forEach(function (day, i) {
      var base = 0;
      seriesList.forEach(function (series, k) {
        var value = series.values[i];
        if (!value) return;
        var x = CHART.left + frame.slot * i + (frame.slot - width) / 2;
        var w = width;
        var from = 0;
        if (stacked) from = base;
        else { w = width / seriesList.length; x += w * k; }
        var rect = s('rect', {
          x: x.toFixed(2), width: Math.max(1, w - 1).toFixed(2), y: frame.y(from + value).toFixed(2),
          height: Math.max(0.5, frame.y(from) - frame.y(from + value)).toFixed(2), fill: series.colour
        });
        rect.appendChild(s('title', { text: formatDayShort(day) + ' · ' + series.label + ': ' + value }));
        frame.svg.appendChild(rect);
        if (stacked) base += value;
      });
    });
    if (max === 0) emptyNote(frame);
    return top;
  }

  function lineChart(container, days, seriesList) {
    var max = 0;
    seriesList.forEach(function (series) {
      series.values.forEach(function (v) { if (v !== null && v > max) max = v; });
    });
    var frame = chartFrame(container, days, niceMax(max), seriesList);
    seriesList.forEach(function (series) {
      var d = '';
      var pen = false;
      series.values.forEach(function (v, i) {
        var x = CHART.left + frame.slot * (i + 0.5);
        if (v === null) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + frame.y(v).toFixed(1);
        pen = true;
        var dot = s('circle', { cx: x.toFixed(1), cy: frame.y(v).toFixed(1), r: 2.5, fill: series.colour });
        dot.appendChild(s('title', { text: formatDayShort(days[i]) + ' · ' + series.label + ': ' + formatMinutes(v * 60) }));
        frame.svg.appendChild(dot);
      });
      if (d) frame.svg.appendChild(s('path', { class: 'line', d: d, stroke: series.colour }));
    });
    if (max === 0) emptyNote(frame);
  }

  // ---- exports ---------------------------------------------------------------------------

  function initExports() {
    if (!$('export-from').value) {
      var range = defaultRange();
      $('export-from').value = range.from;
      $('export-to').value = range.to;
    }
    updateExportLinks();
  }

  function updateExportLinks() {
    var from = $('export-from').value;
    var to = $('export-to').value;
    var caseNumber = $('export-case').value.trim();
    var valid = from && to && from <= to && /^[A-Za-z0-9-]*$/.test(caseNumber);
    var query = '?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to) +
      (caseNumber ? '&case=' + encodeURIComponent(caseNumber) : '');
    [['export-csv', '/api/export.csv'], ['export-eido', '/api/export.eido']].forEach(function (pair) {
      var link = $(pair[0]);
      if (valid) {
        link.setAttribute('href', pair[1] + query);
        link.removeAttribute('aria-disabled');
      } else {
        link.removeAttribute('href');
        link.setAttribute('aria-disabled', 'true');
      }
    });
  }

  // ---- start -----------------------------------------------------------------------------

  function init() {
    var saved = null;
    try { saved = localStorage.getItem(LANG_KEY); } catch (e) { /* private mode */ }
    state.lang = saved && WORDS[saved] ? saved : 'th';
    setLanguage(state.lang);

    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('lang-toggle').addEventListener('click', function () { setLanguage(state.lang === 'th' ? 'en' : 'th'); });
    document.querySelectorAll('.nav-item').forEach(function (item) {
      item.addEventListener('click', function () { showView(item.getAttribute('data-view')); });
    });
    window.addEventListener('hashchange', function () { if (state.user) showView(viewFromHash()); });
    $('case-close').addEventListener('click', closeDrawer);
    $('drawer-backdrop').addEventListener('click', closeDrawer);
    document.addEventListener('keydown', function (event) {
      if (event.key === 'Escape' && state.drawerCase) closeDrawer();
    });
    $('stats-form').addEventListener('submit', function (event) {
      event.preventDefault();
      loadStats();
    });
    ['export-from', 'export-to', 'export-case'].forEach(function (id) {
      $(id).addEventListener('input', updateExportLinks);
    });
    $('exports-form').addEventListener('submit', function (event) { event.preventDefault(); });

    api('GET', '/api/me').then(function (answer) {
      if (answer.status === 200 && answer.body && answer.body.user) startSession(answer.body);
      else showLogin();
    }, showLogin);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
