-- Each fault code's Chinese name, as GB/T 24476-2017, TSG and the field terminals say it: inspectors and firms know
-- the faults by these. Pages, the API and the rules' messages show a code as its description with this name.
ALTER TABLE fault_codes ADD COLUMN name_zh text NOT NULL DEFAULT '';

UPDATE fault_codes f SET name_zh = v.name_zh
  FROM (VALUES
    ('safety_circuit_open',      '安全回路断路'),
    ('door_close_failure',       '关门故障'),
    ('door_open_failure',        '开门故障'),
    ('stop_outside_door_zone',   '门区外停梯'),
    ('unintended_movement',      '轿厢意外移动'),
    ('run_time_limiter',         '电动机运转时间限制器动作'),
    ('floor_position_lost',      '楼层位置丢失'),
    ('rerun_prevention',         '防止电梯再运行的故障'),
    ('alarm_button',             '轿厢紧急报警'),
    ('overtravel_bottom',        '蹲底'),
    ('overtravel_top',           '冲顶'),
    ('entrapment',               '困人'),
    ('door_open_while_moving',   '开门走梯'),
    ('overspeed',                '超速'),
    ('power_failure',            '停电'),
    ('door_lock_circuit_open',   '门锁回路断路'),
    ('door_open_too_long',       '长时间开门'),
    ('repeated_door_reopen',     '反复开关门'),
    ('run_timeout',              '运行超时'),
    ('unintended_reversal',      '非操纵逆转'),
    ('step_missing',             '梯级或踏板缺失'),
    ('handrail_speed_deviation', '扶手带速度偏差'),
    ('brake_not_released',       '制动器未释放'),
    ('comb_plate_jam',           '梳齿板异物卡阻'),
    ('emergency_stop',           '急停'),
    ('low_water_level',          '低水位'),
    ('high_water_level',         '高水位'),
    ('overpressure',             '超压'),
    ('flame_failure',            '熄火'),
    ('high_flue_gas_temp',       '排烟温度高'),
    ('feedwater_failure',        '给水中断'),
    ('water_quality',            '水质超标'),
    ('safety_valve_open',        '安全阀开启')
  ) AS v(name, name_zh)
 WHERE f.name = v.name;
